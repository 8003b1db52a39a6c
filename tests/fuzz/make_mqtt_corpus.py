#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_mqtt_decode: one valid packet of each type for MQTT 3.1.1
and 5.0, plus one buffer holding several packets. Run from anywhere; rerun after changing
a seed."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_mqtt_decode")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def packet(first, *parts):
    body = b"".join(parts)
    return bytes([first]) + varint(len(body)) + body


u16 = lambda v: struct.pack(">H", v)
u32 = lambda v: struct.pack(">I", v)
user = lambda k, v: b"\x26" + s(k) + s(v)

SEEDS = {
    "v311_connect": packet(0x10, s("MQTT"), b"\x04\xEE", u16(60), s("c1"), s("w/t"), s("bye"), s("u"), s("pw")),
    "v311_connack": packet(0x20, b"\x01\x00"),
    "v311_publish_qos0": packet(0x30, s("a/b"), b"hello"),
    "v311_publish_qos2": packet(0x35, s("a/b"), u16(7), b"payload"),
    "v311_puback": packet(0x40, u16(1)),
    "v311_pubrec": packet(0x50, u16(2)),
    "v311_pubrel": packet(0x62, u16(2)),
    "v311_pubcomp": packet(0x70, u16(2)),
    "v311_subscribe": packet(0x82, u16(10), s("a/+"), b"\x01", s("$share/g/c/#"), b"\x02"),
    "v311_suback": packet(0x90, u16(10), b"\x00\x01\x02\x80"),
    "v311_unsubscribe": packet(0xA2, u16(11), s("a/+"), s("#")),
    "v311_unsuback": packet(0xB0, u16(11)),
    "v311_pingreq": packet(0xC0),
    "v311_pingresp": packet(0xD0),
    "v311_disconnect": packet(0xE0),
    "v5_connect": packet(
        0x10, s("MQTT"), b"\x05\xF6", u16(30),
        props(b"\x11" + u32(120), b"\x21" + u16(20), b"\x22" + u16(5), b"\x27" + u32(4096), b"\x17\x01",
              b"\x19\x01", b"\x15" + s("SCRAM"), b"\x16" + s(b"\x00\x01"), user("k", "v")),
        s("c5"),
        props(b"\x01\x01", b"\x02" + u32(60), b"\x03" + s("text/plain"), b"\x08" + s("r/t"),
              b"\x09" + s(b"\xDE\xAD"), b"\x18" + u32(5), user("w", "1")),
        s("will/t"), s("gone"), s("user"), s("pass")),
    "v5_connack": packet(
        0x20, b"\x00\x00",
        props(b"\x11" + u32(0), b"\x12" + s("id"), b"\x13" + u16(30), b"\x15" + s("SCRAM"),
              b"\x16" + s(b"\x01"), b"\x1A" + s("resp"), b"\x1C" + s("other"), b"\x1F" + s("ok"),
              b"\x21" + u16(10), b"\x22" + u16(5), b"\x24\x01", b"\x25\x01", b"\x27" + u32(1024),
              b"\x28\x01", b"\x29\x01", b"\x2A\x01", user("a", "b"))),
    "v5_publish": packet(
        0x3B, s("a/b"), u16(9),
        props(user("a", "b"), b"\x0B\x01", b"\x23" + u16(4), user("c", "d"), b"\x0B\x80\x01",
              b"\x01\x01", b"\x02" + u32(60), b"\x03" + s("ct"), b"\x08" + s("r"), b"\x09" + s("x")),
        b"hi"),
    "v5_publish_alias": packet(0x30, s(""), props(b"\x23" + u16(2)), b"aliased"),
    "v5_puback": packet(0x40, u16(1), b"\x10", props(b"\x1F" + s("none"), user("k", "v"))),
    "v5_pubrec": packet(0x50, u16(2), b"\x80"),
    "v5_pubrel": packet(0x62, u16(2), b"\x92", props()),
    "v5_pubcomp": packet(0x70, u16(2)),
    "v5_subscribe": packet(0x82, u16(12), props(b"\x0B\x05", user("k", "v")),
                           s("a/+"), b"\x2D", s("$share/g/x"), b"\x12"),
    "v5_suback": packet(0x90, u16(12), props(b"\x1F" + s("why")), b"\x00\x02\x87\xA2"),
    "v5_unsubscribe": packet(0xA2, u16(13), props(user("k", "v")), s("a/+")),
    "v5_unsuback": packet(0xB0, u16(13), props(), b"\x00\x11"),
    "v5_disconnect": packet(0xE0, b"\x9C", props(b"\x11" + u32(0), b"\x1C" + s("h"), b"\x1F" + s("bye"))),
    "v5_auth": packet(0xF0, b"\x18", props(b"\x15" + s("SCRAM"), b"\x16" + s(b"\x01\x02"))),
}
SEEDS["v5_stream"] = (SEEDS["v5_publish"] + packet(0xC0) + SEEDS["v5_puback"] + SEEDS["v5_disconnect"])


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
