#include "health_module.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace singleton_lock::cli {

namespace {

constexpr const char* kModuleName = "singleton-lock-health.so";

std::string executable_dir() {
    char path[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return "";
    const std::string exe(path, static_cast<size_t>(n));
    const auto slash = exe.rfind('/');
    return slash == std::string::npos ? "" : exe.substr(0, slash);
}

std::vector<std::string> candidates() {
    std::vector<std::string> paths;
    const std::string here = executable_dir();
    if (!here.empty()) paths.push_back(here + "/" + kModuleName);
    paths.push_back(std::string(SL_HEALTH_MODULE_DIR) + "/" + kModuleName);
    return paths;
}

// Code loaded into a process that may run as root: refuse a module that
// someone else could have written or replaced (as sudo and sshd check their
// files): owned by root or by us, not writable by others, in a directory
// others cannot write to unless it is sticky (/tmp).
std::string untrusted_because(const std::string& path, const struct stat& file) {
    struct stat dir {};
    const std::string folder = path.substr(0, path.rfind('/'));
    if (::stat(folder.c_str(), &dir) != 0) return std::strerror(errno);
    const uid_t me = ::geteuid();
    if (file.st_uid != 0 && file.st_uid != me) return "owned by another user";
    if ((file.st_mode & S_IWOTH) != 0) return "writable by others";
    if ((dir.st_mode & S_IWOTH) != 0 && (dir.st_mode & S_ISVTX) == 0)
        return "its directory is writable by others";
    return "";
}

using OpenFn = decltype(&singleton_lock_health_open_v1);

// The first candidate that exists; dlopen's reason when one exists but does not
// load. The handle is never closed: the endpoint's code lives in it.
OpenFn load_entry() {
    std::string tried;
    for (const auto& path : candidates()) {
        struct stat file {};
        if (::stat(path.c_str(), &file) != 0) {
            tried += (tried.empty() ? "" : ", ") + path;
            continue;
        }
        const std::string why = untrusted_because(path, file);
        if (!why.empty())
            throw std::runtime_error("refusing to load the health endpoint's module " + path +
                                     ": " + why);
        void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr)
            throw std::runtime_error("cannot load the health endpoint's module: " +
                                     std::string(::dlerror()));
        if (void* entry = ::dlsym(handle, SINGLETON_LOCK_HEALTH_ENTRY))
            return reinterpret_cast<OpenFn>(entry);
        throw std::runtime_error("the health endpoint's module " + path + " has no " +
                                 SINGLETON_LOCK_HEALTH_ENTRY + " (another release's module?)");
    }
    throw std::runtime_error("the health endpoint's module " + std::string(kModuleName) +
                             " is not installed (looked for " + tried + ")");
}

}  // namespace

HealthModule::HealthModule() : open_(load_entry()) {}

std::unique_ptr<HealthEndpoint> HealthModule::open(const std::string& host, int port,
                                                   const HealthSource& source) const {
    char error[512] = "";
    HealthEndpoint* endpoint =
        open_(SINGLETON_LOCK_VERSION, host.c_str(), port, &source, error, sizeof error);
    if (endpoint == nullptr) throw std::runtime_error(error);
    return std::unique_ptr<HealthEndpoint>(endpoint);
}

}  // namespace singleton_lock::cli
