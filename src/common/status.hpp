// A status code with the message the caller will see in `err`.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>

#include "rpa/rpa.h"

namespace rpa {

struct Status {
  rpa_status code = RPA_OK;
  std::string message;

  bool ok() const { return code == RPA_OK; }

  static Status make(rpa_status code, const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    Status s;
    s.code = code;
    char buf[512];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    s.message = buf;
    return s;
  }
};

#define RPA_INVALID(...) ::rpa::Status::make(RPA_ERR_INVALID_ARGUMENT, __VA_ARGS__)

// Copy a message into the caller's buffer: NUL-terminated, truncated to err_len.
inline void write_error(char* err, size_t err_len, const std::string& message) {
  if (err == nullptr || err_len == 0) return;
  const size_t n = message.size() < err_len - 1 ? message.size() : err_len - 1;
  message.copy(err, n);
  err[n] = '\0';
}

}  // namespace rpa
