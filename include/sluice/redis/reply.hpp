#pragma once
// A Redis reply copied out of hiredis. hiredis frees its redisReply as soon as the reply callback
// returns, so the client copies it into this small owned tree first. Assigning into an existing
// Reply reuses its strings and vectors: a reused Reply stops allocating once it has seen the
// largest reply of its shape.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct redisReply;  // hiredis' type; only reply.cpp needs its definition

namespace sluice::redis {

class Reply {
 public:
  enum class Type : std::uint8_t { nil, integer, string, status, error, array };

  Type type() const noexcept { return type_; }
  bool is_nil() const noexcept { return type_ == Type::nil; }
  bool is_error() const noexcept { return type_ == Type::error; }
  // The value of an integer reply; 0 for other types.
  std::int64_t integer() const noexcept { return integer_; }
  // The bytes of a string, status or error reply; empty for other types.
  std::string_view text() const noexcept { return text_; }
  // The elements of an array reply; empty for other types.
  std::span<const Reply> elements() const noexcept { return elements_; }

  // Copies a hiredis reply (and everything below it).
  void assign(const redisReply& raw);

  void set_nil() noexcept;
  void set_integer(std::int64_t value) noexcept;
  void set_text(Type type, std::string_view text);  // string, status or error
  // Makes this an array of `size` nil elements, to be filled through mutable_elements().
  void set_array(std::size_t size);
  std::span<Reply> mutable_elements() noexcept { return elements_; }

  // A short human-readable rendering, e.g. [1, "two", nil], for logs and test messages.
  std::string describe() const;

 private:
  Type type_ = Type::nil;
  std::int64_t integer_ = 0;
  std::string text_;
  std::vector<Reply> elements_;
};

std::string_view to_string(Reply::Type type) noexcept;

}  // namespace sluice::redis
