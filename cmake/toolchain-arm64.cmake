# Cross build for arm64 (AArch64) with Debian 12's g++-aarch64-linux-gnu, against the sysroot
# scripts/cross-sysroot.sh assembles in the build folder (TROUPE_SYSROOT, default
# <build>/sysroot). `make cross ARCH=arm64` passes it.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT TROUPE_SYSROOT)
  set(TROUPE_SYSROOT ${CMAKE_BINARY_DIR}/sysroot)
endif()
set(CMAKE_SYSROOT ${TROUPE_SYSROOT})
# try_compile projects re-read this file: hand them the same sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TROUPE_SYSROOT)

# Libraries, headers and CMake packages from the sysroot only; programs (python3, git) from the host.
set(CMAKE_FIND_ROOT_PATH ${TROUPE_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${TROUPE_SYSROOT})
set(ENV{PKG_CONFIG_LIBDIR}
  ${TROUPE_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${TROUPE_SYSROOT}/usr/share/pkgconfig)
# Shared libraries' own dependencies (libcaf_io -> libssl, ...) are found in the sysroot at link time.
set(CMAKE_EXE_LINKER_FLAGS_INIT
  "-Wl,-rpath-link,${TROUPE_SYSROOT}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,${TROUPE_SYSROOT}/lib/aarch64-linux-gnu")

# Tests run under qemu-user with the sysroot (CTest and catch_discover_tests use this).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static;-L;${TROUPE_SYSROOT})
