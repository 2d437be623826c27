# sluice_bpf_object(<name> <source.bpf.c> [HEADERS h...])
#
# Compiles a BPF C file with clang against the checked-in vmlinux.h (never the build host's BTF),
# generates a libbpf skeleton with `bpftool gen skeleton`, and exposes an INTERFACE target
# `<name>_skel` whose include directory holds `<name>.skel.h`. Header edits rebuild the object.
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(SLUICE_BPF_ARCH x86)
  set(SLUICE_VMLINUX_DIR ${PROJECT_SOURCE_DIR}/vmlinux/x86_64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(SLUICE_BPF_ARCH arm64)
  set(SLUICE_VMLINUX_DIR ${PROJECT_SOURCE_DIR}/vmlinux/aarch64)
else()
  message(FATAL_ERROR "no checked-in vmlinux.h for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

function(sluice_bpf_object name source)
  cmake_parse_arguments(ARG "" "" "HEADERS" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/skel)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  get_filename_component(src_abs ${source} ABSOLUTE)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${SLUICE_BPF_ARCH}
            -Wall -Wextra -Werror -Wno-unused-parameter
            -I${SLUICE_VMLINUX_DIR} -I${PROJECT_SOURCE_DIR}/bpf/include -I${PROJECT_SOURCE_DIR}/bpf
            -c ${src_abs} -o ${obj}
    DEPENDS ${src_abs} ${ARG_HEADERS} ${SLUICE_VMLINUX_DIR}/vmlinux.h
    COMMENT "BPF ${name}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out_dir} ${PROJECT_SOURCE_DIR}/bpf/include)
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
