# Building for x86-64 Linux with musl (Alpine's C library) through Debian's musl-tools wrapper.
# ocipkg_package tells musl from glibc by the toolchain's name: musl-gcc -> x86_64-unknown-linux-musl.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER musl-gcc)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
