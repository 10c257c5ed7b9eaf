#include "program_interpreter.hpp"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

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

// The PT_INTERP path of an ELF file of this machine's byte order; Ehdr and
// Phdr are Elf32_* or Elf64_*.
template <typename Ehdr, typename Phdr>
std::string elf_interpreter(const ReadOnlyFile& file) {
    Ehdr header;
    if (!file.read_at(&header, sizeof header, 0) || header.e_phentsize != sizeof(Phdr)) return "";
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

bool native_byte_order(unsigned char ei_data) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return ei_data == ELFDATA2LSB;
#else
    return ei_data == ELFDATA2MSB;
#endif
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
