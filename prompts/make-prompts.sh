#!/usr/bin/env bash
# Regenerates the spoken prompts shipped in this folder, from text, with Debian's espeak-ng
# (speech) and sox (telephone band, level, 8 kHz mono G.711 µ-law WAV, as callbridge plays
# them). Needs: apt-get install espeak-ng sox. Deterministic for one espeak-ng/sox version.
#
#   prompts/make-prompts.sh                 all prompts below
#   VOICE=de prompts/make-prompts.sh        another espeak-ng voice (localise: change TEXT too)
#
# hold-en.wav is the built-in announcement (dp_api::Clip::builtin_prompt embeds it): played in
# a loop to the customer while an agent is called. Its trailing silence spaces the repeats.
set -euo pipefail
cd "$(dirname "$0")"
for tool in espeak-ng sox; do
    type -P "$tool" >/dev/null || { echo "make-prompts: $tool not found (apt-get install espeak-ng sox)" >&2; exit 1; }
done
VOICE=${VOICE:-en-us}
make_prompt() {
    local out=$1 text=$2
    local tmp
    tmp=$(mktemp --suffix=.wav)
    trap 'rm -f "$tmp"' RETURN
    # 150 words per minute, a lower pitch and a little gap between words: clearer on a phone.
    espeak-ng -v "$VOICE" -s 150 -p 40 -g 2 -w "$tmp" "$text"
    # Telephone band (300-3400 Hz), peak at -3 dBFS, 0.2 s lead-in and 1.2 s of silence after,
    # 8 kHz mono µ-law.
    sox "$tmp" -r 8000 -c 1 -e u-law -b 8 "$out" sinc 300-3400 norm -3 pad 0.2 1.2
    echo "make-prompts: $out: $(soxi -D "$out") s"
}
make_prompt hold-en.wav "Thank you. Please hold while we connect you to an agent."
