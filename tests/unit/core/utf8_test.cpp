#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/topic.hpp"

namespace {

using namespace std::string_literals;
using tern::is_valid_mqtt_utf8;

// Written independently of the validator: decode by bit pattern, then reject what
// RFC 3629 and MQTT §1.5.4 forbid.
bool reference_valid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    std::uint32_t min;
    if ((b & 0x80) == 0) {
      len = 1, cp = b, min = 0;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1Fu, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0Fu, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07u, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    if (cp < min || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string encode(std::uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

TEST(MqttUtf8, AcceptsEmptyAndAscii) {
  EXPECT_TRUE(is_valid_mqtt_utf8(""));
  EXPECT_TRUE(is_valid_mqtt_utf8("a"));
  EXPECT_TRUE(is_valid_mqtt_utf8("sport/tennis/player1"));
  EXPECT_TRUE(is_valid_mqtt_utf8("\x01\x1F\x7F"));  // control characters are discouraged, not forbidden
  EXPECT_TRUE(is_valid_mqtt_utf8(std::string(1000, 'x')));
}

TEST(MqttUtf8, AcceptsBoundaryCodePointsOfEachLength) {
  EXPECT_TRUE(is_valid_mqtt_utf8("\xC2\x80"));              // U+0080
  EXPECT_TRUE(is_valid_mqtt_utf8("\xDF\xBF"));              // U+07FF
  EXPECT_TRUE(is_valid_mqtt_utf8("\xE0\xA0\x80"));          // U+0800
  EXPECT_TRUE(is_valid_mqtt_utf8("\xED\x9F\xBF"));          // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_mqtt_utf8("\xEE\x80\x80"));          // U+E000, just above them
  EXPECT_TRUE(is_valid_mqtt_utf8("\xEF\xBF\xBF"));          // U+FFFF
  EXPECT_TRUE(is_valid_mqtt_utf8("\xEF\xBB\xBF"));          // U+FEFF must not be stripped or rejected
  EXPECT_TRUE(is_valid_mqtt_utf8("\xF0\x90\x80\x80"));      // U+10000
  EXPECT_TRUE(is_valid_mqtt_utf8("\xF4\x8F\xBF\xBF"));      // U+10FFFF
  EXPECT_TRUE(is_valid_mqtt_utf8("A\xF0\xAA\x9B\x94"));     // the example of §1.5.4
  EXPECT_TRUE(is_valid_mqtt_utf8("temp\xC2\xB0" "C/Z\xC3\xBCrich/\xE6\x9D\xB1\xE4\xBA\xAC"));
}

TEST(MqttUtf8, RejectsNullCharacter) {
  EXPECT_FALSE(is_valid_mqtt_utf8("\0"s));
  EXPECT_FALSE(is_valid_mqtt_utf8("abc\0def"s));
  EXPECT_FALSE(is_valid_mqtt_utf8("abcdefg\0hijklmnop"s));  // inside an eight-byte block
  EXPECT_FALSE(is_valid_mqtt_utf8("abcdefghijklmnop\0"s));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xC0\x80"));  // the "modified UTF-8" NUL is overlong
}

TEST(MqttUtf8, RejectsOverlongEncodings) {
  EXPECT_FALSE(is_valid_mqtt_utf8("\xC0\xAF"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xC1\xBF"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xE0\x80\x80"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xE0\x9F\xBF"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF0\x80\x80\x80"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF0\x8F\xBF\xBF"));
}

TEST(MqttUtf8, RejectsSurrogates) {
  EXPECT_FALSE(is_valid_mqtt_utf8("\xED\xA0\x80"));  // U+D800
  EXPECT_FALSE(is_valid_mqtt_utf8("\xED\xAD\xBF"));  // U+DB7F
  EXPECT_FALSE(is_valid_mqtt_utf8("\xED\xB0\x80"));  // U+DC00
  EXPECT_FALSE(is_valid_mqtt_utf8("\xED\xBF\xBF"));  // U+DFFF
  EXPECT_FALSE(is_valid_mqtt_utf8("\xED\xA0\xBD\xED\xB8\x80"));  // CESU-8 pair
}

TEST(MqttUtf8, RejectsCodePointsAboveUnicodeRange) {
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF7\xBF\xBF\xBF"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF8\x88\x80\x80\x80"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xFC\x84\x80\x80\x80\x80"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xFE"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xFF"));
}

TEST(MqttUtf8, RejectsTruncatedSequences) {
  EXPECT_FALSE(is_valid_mqtt_utf8("\xC2"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xE0\xA0"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF0\x90\x80"));
  EXPECT_FALSE(is_valid_mqtt_utf8("price: 5\xE2\x82"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xE2\x82" "abc"));
}

TEST(MqttUtf8, RejectsStrayAndMissingContinuationBytes) {
  EXPECT_FALSE(is_valid_mqtt_utf8("\x80"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xBF"));
  EXPECT_FALSE(is_valid_mqtt_utf8("a\x80z"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xC2\x41"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xE2\x28\xA1"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xE2\x82\x28"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF0\x90\x28\xBC"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xF0\x90\x80\xC0"));
  EXPECT_FALSE(is_valid_mqtt_utf8("\xC2\xC2\x80"));
}

TEST(MqttUtf8, FindsAnInvalidByteAtEveryOffsetOfALongAsciiString) {
  for (std::size_t at = 0; at < 40; ++at) {
    for (const char bad : {'\0', '\x80', '\xC2', '\xFF'}) {
      std::string s(40, 'q');
      s[at] = bad;
      EXPECT_FALSE(is_valid_mqtt_utf8(s)) << "offset " << at << " byte " << int(static_cast<unsigned char>(bad));
    }
    std::string ok(40, 'q');
    ok.replace(at, 1, "\xC3\xA9");  // valid two-byte sequence straddling every block boundary
    EXPECT_TRUE(is_valid_mqtt_utf8(ok)) << "offset " << at;
  }
}

TEST(MqttUtf8, AcceptsEveryScalarValueAndRejectsSurrogates) {
  for (std::uint32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    const std::string s = "ab" + encode(cp) + "cdefghij";
    ASSERT_EQ(is_valid_mqtt_utf8(s), !surrogate) << std::hex << cp;
  }
}

TEST(MqttUtf8, AgreesWithReferenceOnEveryOneTwoAndThreeByteString) {
  for (int a = 0; a < 256; ++a) {
    const std::string one{static_cast<char>(a)};
    ASSERT_EQ(is_valid_mqtt_utf8(one), reference_valid(one)) << a;
    for (int b = 0; b < 256; ++b) {
      const std::string two{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_EQ(is_valid_mqtt_utf8(two), reference_valid(two)) << a << ' ' << b;
    }
  }
  std::string three(3, '\0');
  for (int a = 0xC0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c = 0; c < 256; ++c) {
        three[0] = static_cast<char>(a), three[1] = static_cast<char>(b), three[2] = static_cast<char>(c);
        ASSERT_EQ(is_valid_mqtt_utf8(three), reference_valid(three)) << a << ' ' << b << ' ' << c;
      }
    }
  }
}

TEST(MqttUtf8, AgreesWithReferenceOnFourByteLeadsAndEdges) {
  std::string four(4, '\0');
  const int edges[] = {0x00, 0x3F, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF};
  for (int a = 0xE0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c : edges) {
        for (int d : edges) {
          four[0] = static_cast<char>(a), four[1] = static_cast<char>(b);
          four[2] = static_cast<char>(c), four[3] = static_cast<char>(d);
          ASSERT_EQ(is_valid_mqtt_utf8(four), reference_valid(four)) << a << ' ' << b << ' ' << c << ' ' << d;
        }
      }
    }
  }
}

}  // namespace
