#!/usr/bin/env bash
# deps.sh PACKAGE... — installs the Debian packages of the list that are missing (apt-get, quiet),
# through sudo when not root; says what it installs and that it takes a while. A no-op when
# everything is there. `clang-rt` stands for the sanitizer runtime of the clang installed.
set -u
want=()
for p in "$@"; do
  if [ "$p" = clang-rt ]; then
    major=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n 1)
    p=${major:+libclang-rt-$major-dev}
    p=${p:-libclang-rt-dev}
  fi
  want+=("$p")
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=sudo
  else
    echo "missing Debian packages; as root, run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "installing ${#missing[@]} Debian package(s) with apt-get${sudo:+ (through sudo)}; this takes a minute or two:"
echo "  ${missing[*]}"
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
