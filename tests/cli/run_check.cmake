# Runs `sluice check CONFIG` and asserts its exit status AND its output, which CTest alone cannot do
# (PASS_REGULAR_EXPRESSION ignores the exit code).
#   cmake -DSLUICE=<binary> -DCONFIG=<file> -DEXPECT=success|failure
#         [-DSTDOUT_MATCHES=<regex>] [-DSTDERR_MATCHES=<regex>] -P run_check.cmake
foreach(var SLUICE CONFIG EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_check.cmake: -D${var}=... is required")
  endif()
endforeach()

execute_process(
  COMMAND "${SLUICE}" check "${CONFIG}"
  RESULT_VARIABLE status
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
message("exit status: ${status}\n--- stdout\n${out}--- stderr\n${err}---")

if(EXPECT STREQUAL "success")
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "expected exit status 0, got '${status}'")
  endif()
elseif(EXPECT STREQUAL "failure")
  # Non-zero, and a number: a crash (a signal name here) is not a clean rejection.
  if(status EQUAL 0 OR NOT status MATCHES "^[0-9]+$")
    message(FATAL_ERROR "expected a non-zero exit status, got '${status}'")
  endif()
else()
  message(FATAL_ERROR "EXPECT must be success or failure, not '${EXPECT}'")
endif()

if(DEFINED STDOUT_MATCHES AND NOT out MATCHES "${STDOUT_MATCHES}")
  message(FATAL_ERROR "stdout does not match '${STDOUT_MATCHES}'")
endif()
if(DEFINED STDERR_MATCHES AND NOT err MATCHES "${STDERR_MATCHES}")
  message(FATAL_ERROR "stderr does not match '${STDERR_MATCHES}'")
endif()
