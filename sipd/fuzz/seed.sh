#!/bin/sh
# Seeds corpus/parse and corpus/handle from tests/fixtures (run from anywhere).
# A handle input is 8 bytes of setup (flags, IPv4 source, port, local/now) then the message.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../../tests/fixtures"
mkdir -p "$here/corpus/parse" "$here/corpus/handle"
for f in "$fixtures"/rfc4475/*.dat "$fixtures"/messages/*.sip "$fixtures"/proxy/*.sip; do
    name=$(basename "$f")
    cp "$f" "$here/corpus/parse/$name"
    # flags 0 (UDP, IPv4, config A), source 192.0.2.10:5060, local 0.
    { printf '\000\300\000\002\012\023\304\000'; cat "$f"; } > "$here/corpus/handle/$name"
    # flags 4 (config B: no default route), same source.
    { printf '\004\300\000\002\012\023\304\000'; cat "$f"; } > "$here/corpus/handle/b-$name"
done
