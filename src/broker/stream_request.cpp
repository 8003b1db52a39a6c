#include "broker/stream_request.hpp"

#include <boost/json.hpp>
#include <boost/json/src.hpp>  // Boost.JSON compiled into this one translation unit
#include <charconv>
#include <ctime>

namespace tern::broker {

Expected<std::int64_t, std::string> parse_utc_timestamp(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.mmm]Z
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    if (pos + len > text.size()) return false;
    auto r = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return r.ec == std::errc() && r.ptr == text.data() + pos + len;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, millis = 0;
  const bool shape = text.size() >= 20 && text[4] == '-' && text[7] == '-' && text[10] == 'T' && text[13] == ':' &&
                     text[16] == ':' && text.back() == 'Z';
  if (!shape || !num(0, 4, year) || !num(5, 2, month) || !num(8, 2, day) || !num(11, 2, hour) ||
      !num(14, 2, minute) || !num(17, 2, second)) {
    return make_unexpected(std::string("expected a UTC time like 2026-11-28T01:02:03Z"));
  }
  if (text.size() == 24 && text[19] == '.') {
    if (!num(20, 3, millis)) return make_unexpected(std::string("bad milliseconds in the time"));
  } else if (text.size() != 20) {
    return make_unexpected(std::string("expected a UTC time like 2026-11-28T01:02:03Z"));
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return make_unexpected(std::string("time out of range"));
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t t = timegm(&tm);
  return static_cast<std::int64_t>(t) * 1000 + millis;
}

Expected<StreamReadRequest, std::string> parse_stream_read_request(std::string_view payload) {
  StreamReadRequest req;
  if (payload.empty()) return req;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(payload, ec);
  if (ec) return make_unexpected("the request is not JSON: " + ec.message());
  if (!v.is_object()) return make_unexpected(std::string("the request must be a JSON object"));
  auto as_count = [](const boost::json::value& x, std::uint64_t& out) {
    if (x.is_uint64()) {
      out = x.as_uint64();
      return true;
    }
    if (x.is_int64() && x.as_int64() >= 0) {
      out = static_cast<std::uint64_t>(x.as_int64());
      return true;
    }
    return false;
  };
  for (const auto& [key, value] : v.as_object()) {
    if (key == "from") {
      if (!as_count(value, req.from_offset)) return make_unexpected(std::string("\"from\" must be an offset (>= 0)"));
    } else if (key == "max") {
      if (!as_count(value, req.max_count)) return make_unexpected(std::string("\"max\" must be a count (>= 0)"));
    } else if (key == "from_time") {
      std::uint64_t ms = 0;
      if (value.is_string()) {
        auto t = parse_utc_timestamp(value.as_string());
        if (!t) return make_unexpected("\"from_time\": " + t.error());
        req.from_time_ms = *t;
      } else if (as_count(value, ms)) {
        req.from_time_ms = static_cast<std::int64_t>(ms);
      } else {
        return make_unexpected(std::string("\"from_time\" must be milliseconds since the epoch or a UTC time"));
      }
    } else {
      return make_unexpected("unknown member \"" + std::string(key) + "\" (allowed: from, from_time, max)");
    }
  }
  return req;
}

}  // namespace tern::broker
