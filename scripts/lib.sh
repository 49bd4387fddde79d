# Shared by scripts/demo and scripts/test (both run from the repository
# root): install what is missing, set up the vpcd readers and pcscd.
# Sourced, not run.

# Run a command as root: directly when we are root, else through sudo.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "keyward: need root for: $*; run this script as root or install sudo" >&2
		exit 1
	fi
}

# The Debian packages among "$@" that are not installed.
missing_packages() {
	for p in "$@"; do
		s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$s" = installed ] || printf '%s\n' "$p"
	done
}

# Install the missing ones among "$@", saying which; nothing when none is.
ensure_packages() {
	missing=$(missing_packages "$@" | tr '\n' ' ')
	missing=${missing% }
	[ -n "$missing" ] || return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "keyward: missing packages: $missing; this script supports Debian 12 and later (apt-get)" >&2
		exit 1
	fi
	echo "keyward: installing Debian packages: $missing"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
}

# What building keyward and running the demo through pcscd need.
DEMO_PACKAGES="build-essential pkg-config libpcsclite-dev libudev-dev pcscd vsmartcard-vpcd"

# pcscd with the eight vpcd readers (.ci/rig-setup), unless already so: the
# reader blocks are configured and pcscd is running.
ensure_rig() {
	if [ -e /etc/reader.conf.d/keyward-vpcd-D ] && pgrep -x pcscd >/dev/null 2>&1 \
		&& [ -S /run/pcscd/pcscd.comm ]; then
		return 0
	fi
	echo "keyward: configuring the vpcd readers and (re)starting pcscd (.ci/rig-setup)"
	as_root bash .ci/rig-setup
}

# The Rust toolchain (rustup's; Debian 12's rustc is older than our
# rust-version).
ensure_cargo() {
	if ! command -v cargo >/dev/null 2>&1; then
		echo "keyward: cargo not found; install Rust 1.89 or later with rustup (https://rustup.rs), then run this again" >&2
		exit 1
	fi
}
