#include "program_interpreter.hpp"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace singleton_lock::cli {

namespace {

class ReadOnlyFile {
  public:
    explicit ReadOnlyFile(const std::string& path)
        : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)) {}
    ~ReadOnlyFile() {
        if (fd_ >= 0) ::close(fd_);
    }
    ReadOnlyFile(const ReadOnlyFile&) = delete;
    ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

    // Up to len bytes at offset (0 for an error or an unreadable file).
    std::size_t read_up_to(void* into, std::size_t len, std::uint64_t offset) const {
        if (fd_ < 0) return 0;
        const ssize_t n = ::pread(fd_, into, len, static_cast<off_t>(offset));
        return n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    bool read_at(void* into, std::size_t len, std::uint64_t offset) const {
        return read_up_to(into, len, offset) == len;
    }

  private:
    int fd_;
};

// As the kernel reads a #! line: its first 256 bytes, the first word after #!.
std::string script_interpreter(const char* buf, std::size_t n) {
    if (n < 2 || buf[0] != '#' || buf[1] != '!') return "";
    std::size_t i = 2;
    while (i < n && (buf[i] == ' ' || buf[i] == '\t')) ++i;
    const std::size_t from = i;
    while (i < n && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\0') ++i;
    return std::string(buf + from, i - from);
}

bool file_machine(const ReadOnlyFile& file, Elf64_Half* machine) {
    static_assert(offsetof(Elf32_Ehdr, e_machine) == offsetof(Elf64_Ehdr, e_machine));
    return file.read_at(machine, sizeof *machine, offsetof(Elf64_Ehdr, e_machine));
}

bool native_byte_order(unsigned char ei_data) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return ei_data == ELFDATA2LSB;
#else
    return ei_data == ELFDATA2MSB;
#endif
}

// The machine (e_machine) singleton-lock itself was built for: that of its
// own executable. 0 when unknown.
unsigned native_machine() {
    static const unsigned machine = [] {
        Elf64_Half m = 0;  // (e_machine: the same offset and size in Elf32 and Elf64)
        const ReadOnlyFile self("/proc/self/exe");
        return file_machine(self, &m) ? unsigned{m} : 0u;
    }();
    return machine;
}

// The PT_INTERP path of an ELF file of this machine's byte order; Ehdr and
// Phdr are Elf32_* or Elf64_*. Only for binaries of singleton-lock's own
// machine: a foreign one may run through binfmt_misc (qemu-user), whose
// loader need not be where the file says.
template <typename Ehdr, typename Phdr>
std::string elf_interpreter(const ReadOnlyFile& file) {
    Ehdr header;
    if (!file.read_at(&header, sizeof header, 0) || header.e_phentsize != sizeof(Phdr)) return "";
    if (header.e_machine != native_machine()) return "";
    for (unsigned i = 0; i < header.e_phnum && i < 4096; ++i) {
        Phdr ph;
        if (!file.read_at(&ph, sizeof ph, header.e_phoff + std::uint64_t{i} * sizeof ph)) return "";
        if (ph.p_type != PT_INTERP) continue;
        if (ph.p_filesz < 2 || ph.p_filesz > PATH_MAX) return "";
        std::string path(ph.p_filesz, '\0');
        if (!file.read_at(path.data(), path.size(), ph.p_offset)) return "";
        path.resize(std::strlen(path.c_str()));
        return path;
    }
    return "";  // statically linked
}

}  // namespace

ProgramInterpreter interpreter_of(const std::string& executable) {
    const ReadOnlyFile file(executable);
    char head[256];
    const std::size_t n = file.read_up_to(head, sizeof head, 0);
    if (std::string script = script_interpreter(head, n); !script.empty())
        return {script, "#! line"};
    if (n < EI_NIDENT || std::memcmp(head, ELFMAG, SELFMAG) != 0 ||
        !native_byte_order(static_cast<unsigned char>(head[EI_DATA])))
        return {};
    std::string elf = head[EI_CLASS] == ELFCLASS64   ? elf_interpreter<Elf64_Ehdr, Elf64_Phdr>(file)
                      : head[EI_CLASS] == ELFCLASS32 ? elf_interpreter<Elf32_Ehdr, Elf32_Phdr>(file)
                                                     : std::string();
    if (elf.empty()) return {};
    return {elf, "ELF PT_INTERP"};
}

}  // namespace singleton_lock::cli
