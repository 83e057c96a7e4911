# Cross build for riscv64 with Debian 12's g++-riscv64-linux-gnu: the engine alone
# (TROUPE_MESH=OFF: CAF, ZeroMQ and the rest have no riscv64 packages in Debian 12), linked
# statically so that the binary runs on any riscv64 Linux and under qemu-riscv64-static without a
# target root. The C and C++ libraries are the cross compiler's own (/usr/riscv64-linux-gnu); the
# rest (CLI11, nlohmann-json and Catch2 from Debian's packages, libsodium and PCRE2 built from
# Debian's sources) is in the sysroot scripts/cross-sysroot.sh assembles in the build folder
# (TROUPE_SYSROOT, default <build>/sysroot).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(CMAKE_C_COMPILER riscv64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER riscv64-linux-gnu-g++)

if(NOT TROUPE_SYSROOT)
  set(TROUPE_SYSROOT ${CMAKE_BINARY_DIR}/sysroot)
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TROUPE_SYSROOT)
set(TROUPE_MESH OFF CACHE BOOL "riscv64 builds the engine alone")

# Packages from the sysroot (and the cross compiler's own tree) only; programs from the host.
set(CMAKE_FIND_ROOT_PATH ${TROUPE_SYSROOT} /usr/riscv64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${TROUPE_SYSROOT})
set(ENV{PKG_CONFIG_LIBDIR} ${TROUPE_SYSROOT}/usr/lib/pkgconfig)

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# GCC 12 compiles riscv64's one- and two-byte atomics (std::atomic<bool>, std::barrier's) to
# calls into libatomic; it goes last on the link line, after the libraries that use it.
set(CMAKE_CXX_STANDARD_LIBRARIES_INIT "-latomic")
set(CMAKE_C_STANDARD_LIBRARIES_INIT "-latomic")

# Tests run under qemu-user (CTest and catch_discover_tests use this); the binaries are static.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-riscv64-static)
