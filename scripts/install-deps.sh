#!/usr/bin/env bash
# Installs the Debian packages dragonraft needs to build, test and run, and
# only those that are missing.  Idempotent: a second run installs nothing.
set -eu

packages=(
	make gcc perl
	postgresql-15 postgresql-server-dev-15
	librocksdb-dev libuv1-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev
	libcmocka-dev libipc-run-perl
	nftables libcap2-bin
	clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages present"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages and not root; run as root: apt-get install ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
