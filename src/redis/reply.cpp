#include <hiredis/hiredis.h>

#include <sluice/redis/reply.hpp>

namespace sluice::redis {

void Reply::assign(const redisReply& raw) {
  switch (raw.type) {
    case REDIS_REPLY_INTEGER:
      set_integer(raw.integer);
      return;
    case REDIS_REPLY_STRING:
      set_text(Type::string, {raw.str, raw.len});
      return;
    case REDIS_REPLY_STATUS:
      set_text(Type::status, {raw.str, raw.len});
      return;
    case REDIS_REPLY_ERROR:
      set_text(Type::error, {raw.str, raw.len});
      return;
    case REDIS_REPLY_ARRAY:
      type_ = Type::array;
      integer_ = 0;
      text_.clear();
      elements_.resize(raw.elements);  // surviving elements keep their buffers for reuse
      for (std::size_t i = 0; i < raw.elements; ++i) {
        if (raw.element[i] != nullptr) {
          elements_[i].assign(*raw.element[i]);
        } else {
          elements_[i].set_nil();
        }
      }
      return;
    default:  // REDIS_REPLY_NIL, and any type a later hiredis might add
      set_nil();
      return;
  }
}

void Reply::set_nil() noexcept {
  type_ = Type::nil;
  integer_ = 0;
  text_.clear();
  elements_.clear();
}

void Reply::set_integer(std::int64_t value) noexcept {
  set_nil();
  type_ = Type::integer;
  integer_ = value;
}

void Reply::set_text(Type type, std::string_view text) {
  set_nil();
  type_ = type;
  text_.assign(text);
}

void Reply::set_array(std::size_t size) {
  integer_ = 0;
  text_.clear();
  type_ = Type::array;
  elements_.resize(size);
  for (auto& element : elements_)
    element.set_nil();
}

std::string Reply::describe() const {
  switch (type_) {
    case Type::nil:
      return "nil";
    case Type::integer:
      return std::to_string(integer_);
    case Type::string:
      return "\"" + text_ + "\"";
    case Type::status:
      return "+" + text_;
    case Type::error:
      return "-" + text_;
    case Type::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < elements_.size(); ++i) {
        if (i > 0) out += ", ";
        out += elements_[i].describe();
      }
      return out + "]";
    }
  }
  return "?";
}

std::string_view to_string(Reply::Type type) noexcept {
  switch (type) {
    case Reply::Type::nil:
      return "nil";
    case Reply::Type::integer:
      return "integer";
    case Reply::Type::string:
      return "string";
    case Reply::Type::status:
      return "status";
    case Reply::Type::error:
      return "error";
    case Reply::Type::array:
      return "array";
  }
  return "?";
}

}  // namespace sluice::redis
