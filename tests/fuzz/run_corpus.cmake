# Runs a fuzz target once over every file of its corpus directory (read at test time, so a crash
# input dropped into the directory is tested without re-running CMake). libFuzzer given files
# instead of a directory executes each of them once and mutates nothing.
#   cmake -DFUZZER=path/to/fuzz_x -DCORPUS=tests/fuzz/corpus/fuzz_x -P run_corpus.cmake
file(GLOB inputs LIST_DIRECTORIES false "${CORPUS}/*")
list(LENGTH inputs count)
if(count EQUAL 0)
  message(FATAL_ERROR "no inputs in ${CORPUS}")
endif()
execute_process(COMMAND "${FUZZER}" ${inputs} RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${status}) on an input of ${CORPUS}")
endif()
message(STATUS "${count} inputs of ${CORPUS} ran clean")
