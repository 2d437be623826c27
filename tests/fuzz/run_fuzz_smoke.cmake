# cmake -P script behind the fuzz_*_smoke tests.
#   FUZZER          fuzzer executable
#   CORPUS_ROOT     directory whose subdirectories (or itself) hold the seeds
#   SEED_GLOB       seed file pattern (default *.http)
#   WORK_DIR        scratch directory in the build tree (wiped first)
#   DICT            libFuzzer dictionary (optional)
#   MAX_TOTAL_TIME  seconds to fuzz
foreach(var FUZZER CORPUS_ROOT WORK_DIR MAX_TOTAL_TIME)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzz_smoke.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")
# Seeds are prefixed with their folder: malformed/ and valid/ both start at 001.
if(NOT DEFINED SEED_GLOB OR SEED_GLOB STREQUAL "")
  set(SEED_GLOB "*.http")
endif()
file(GLOB_RECURSE seeds "${CORPUS_ROOT}/${SEED_GLOB}")
foreach(seed IN LISTS seeds)
  get_filename_component(folder "${seed}" DIRECTORY)
  get_filename_component(folder "${folder}" NAME)
  get_filename_component(name "${seed}" NAME)
  file(COPY_FILE "${seed}" "${WORK_DIR}/corpus/${folder}-${name}")
endforeach()
list(LENGTH seeds seed_count)
message(STATUS "fuzzing ${FUZZER} for ${MAX_TOTAL_TIME}s from ${seed_count} seeds")

set(args -max_total_time=${MAX_TOTAL_TIME} -max_len=4096 -print_final_stats=1
         -artifact_prefix=${WORK_DIR}/artifacts/)
if(DEFINED DICT AND EXISTS "${DICT}")
  list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND "${FUZZER}" ${args} "${WORK_DIR}/corpus"
                WORKING_DIRECTORY "${WORK_DIR}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${rc}); reproducer in ${WORK_DIR}/artifacts")
endif()
