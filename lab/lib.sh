# lab/lib.sh: shared definitions for lab/up, lab/down and lab/check.
# Source it; it defines variables and functions and runs nothing else.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are for the scripts that source this

# Paths, from this file's own location, so the scripts run from any cwd.
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$LAB_DIR/.." && pwd -P)
LAB_STATE="$LAB_DIR/state"
# MAILSEC_LAB_CONFIG picks another configuration (lab/run --addresses per-host).
LAB_CONFIG="${MAILSEC_LAB_CONFIG:-$LAB_DIR/mailsec.toml}"
LAB_BIN="$LAB_STATE/bin/mailsec"
LAB_LOGS="$LAB_STATE/logs"
LAB_PIDS="$LAB_STATE/pids"
# MAILSEC_LAB_ENV: another env file for lab/check (lab/deploy's deployment).
LAB_ENV="${MAILSEC_LAB_ENV:-$LAB_STATE/env}"

# The lab's network namespace: every lab process runs in it, so its
# 127.0.0.0/8 addresses are private to the lab (docs: lab-recipes §0).
# MAILSEC_LAB_NETNS lets two checkouts run labs side by side.
LAB_NETNS="${MAILSEC_LAB_NETNS:-mailsec-lab}"

# The lab's validating resolver (Unbound). Everything else (zones, the
# authoritative address, timings) comes from lab/mailsec.toml.
RESOLVER_ADDR="127.0.0.53"
RESOLVER_PORT="53"
# A second Unbound that does not validate DNSSEC (module-config "iterator"):
# the resolver of lab/run's "novalidate" sender, which must get "validates
# DNSSEC: no" (docs/dns.md "Broken host").
NOVALIDATE_RESOLVER_ADDR="127.0.0.54"

# The lab senders' own domains (lab/run): NAME.sender.lab.internal, and
# noauth.lab.internal for the sender that does not authenticate. Unbound
# serves them as local data (lab/up): MX -> mbox.lab.internal, the lab
# mailbox (a receiving Postfix that lab/run starts) where result mails land;
# SPF allows the senders' source addresses (127.128.0.0/10) for
# *.sender.lab.internal and nothing for noauth.lab.internal.
SENDER_DOMAIN_SUFFIX="sender.lab.internal"
NOAUTH_DOMAIN="noauth.lab.internal"
SENDER_SPF_RANGE="127.128.0.0/10"
MAILBOX_HOST="mbox.lab.internal"
# lab/hardening's SSRF canaries: a sender domain (SPF allows the senders)
# whose MX and MTA-STS hosts are private addresses outside
# network.allow_destinations; the suite listens there and counts.
SSRF_DOMAIN="ssrf.lab.internal"
SSRF_CANARY1="10.99.0.1"
SSRF_CANARY2="169.254.99.1"
MAILBOX_ADDR="127.0.0.30"
# The senders that sign with DKIM (lab/run's postfix-dkim and
# postfix-dkim-broken): their domains NAME.$SIGNED_DOMAIN_SUFFIX carry, as
# Unbound local data (lab/up), the MX, an SPF record allowing the senders,
# the DKIM key of selector $DKIM_SELECTOR (made by lab/up with
# opendkim-genkey, kept in $DKIM_DIR) and a DMARC record (p=reject); one
# OpenDKIM (Debian) milter on $DKIM_MILTER_ADDR signs for both.
SIGNED_DOMAIN_SUFFIX="signed.lab.internal"
DKIM_SELECTOR="lab"
DKIM_DIR="$LAB_STATE/dkim"
DKIM_MILTER_ADDR="127.0.0.31"
DKIM_MILTER_PORT="8891"
DKIM_SENDERS=(dkim dkim-broken)

# pebble, the lab's ACME CA (lab-recipes §4). Its ACME address comes from
# acme.directory in lab/mailsec.toml; the management port (roots) is fixed.
PEBBLE_STATE="$LAB_STATE/pebble"
PEBBLE_MGMT_PORT="15000"
# LAB_CA: every root a lab sender must trust (pebble's root of this run and
# the lab CA of pebble's listener), written by lab/up.
LAB_CA_FILE="$LAB_STATE/lab-ca.pem"

# The user-domain fixtures of the inbound check (lab/fixtures): their state,
# and the fixture CA that lab/up adds to LAB_CA. LAB_FIXTURES=0 makes lab/up
# leave them out.
FX_STATE="$LAB_STATE/fixtures"
FIXTURE_CA_FILE="$FX_STATE/pki/ca.pem"
LAB_FIXTURES="${LAB_FIXTURES:-1}"

# Go may be installed but not on root's PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	PATH="$PATH:/usr/local/go/bin"
	export PATH
fi

log() { printf '%s: %s\n' "${LAB_PROG:-lab}" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

require_root() {
	((EUID == 0)) || die "must run as root (it creates a network namespace)"
}

# ns_exec CMD...: run CMD inside the lab's network namespace.
ns_exec() { ip netns exec "$LAB_NETNS" "$@"; }

# netns_exists [NAME]: the namespace NAME (default: the lab's) exists.
netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "${1:-$LAB_NETNS}"; }

# In the cluster lab (lab/cluster.sh) the store is PostgreSQL behind the
# bridge: CLUSTER_EXEC_NODE runs the command in that node's namespace.
mailsec() {
	if [[ -n "${CLUSTER_EXEC_NODE:-}" ]]; then
		cluster_ns_exec "$CLUSTER_EXEC_NODE" "$LAB_BIN" -config "$LAB_CONFIG" "$@"
	else
		"$LAB_BIN" -config "$LAB_CONFIG" "$@"
	fi
}

# cfg_get SECTION KEY: the raw TOML value of KEY in SECTION of the effective
# configuration (`mailsec config`, defaults included). Needs the binary.
# SECTION "" means the top level.
cfg_get() {
	local section=$1 key=$2
	mailsec config | awk -v want="$section" -v key="$key" '
		/^\[/ { sec = substr($0, 2, length($0) - 2); next }
		sec == want {
			i = index($0, "=")
			if (i == 0) next
			k = substr($0, 1, i - 1); gsub(/[ \t]/, "", k)
			if (k != key) next
			v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
			print v; found = 1; exit
		}
		END { exit found ? 0 : 1 }'
}

# toml_first VALUE: the first string of a TOML string or string array
# ("" for an empty array); a bare value (true, 42) as it is.
toml_first() {
	local v=$1
	if [[ "$v" =~ \"([^\"]*)\" ]]; then
		printf '%s\n' "${BASH_REMATCH[1]}"
	elif [[ "$v" == \[* ]]; then
		printf '\n'
	else
		printf '%s\n' "$v"
	fi
}

# duration_seconds GO_DURATION: "12s", "1m30s", "1h0m0s", "1.5s" -> whole
# seconds (rounded down).
duration_seconds() {
	local d
	d=$(toml_first "$1")
	awk -v d="$d" 'BEGIN {
		t = 0; s = d
		while (length(s) > 0) {
			if (!match(s, /^[0-9.]+/)) exit 1
			n = substr(s, 1, RLENGTH) + 0; s = substr(s, RLENGTH + 1)
			if (!match(s, /^(ns|us|µs|ms|h|m|s)/)) exit 1
			u = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
			f = (u == "h") ? 3600 : (u == "m") ? 60 : (u == "s") ? 1 : (u == "ms") ? 0.001 : (u == "ns") ? 1e-9 : 1e-6
			t += n * f
		}
		printf "%d\n", t
	}' || die "cannot parse duration $1"
}

# pid_alive PID: the process exists and is not a zombie (an exited child
# that its parent has not reaped yet).
pid_alive() {
	local stat
	kill -0 "$1" 2>/dev/null || return 1
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ "${stat%% *}" != Z ]]
}

# pid_in_lab_netns PID: the process's network namespace is the lab's (same
# nsfs device and inode as /run/netns/NAME). Not `ip netns identify`: it
# opens every namespace in /run/netns and fails when another one (another
# lab's, a benchmark's) disappears meanwhile, which made lab/down skip and
# leave running a process that was the lab's.
pid_in_lab_netns() {
	local lab proc
	lab=$(stat -L -c '%d:%i' "/run/netns/$LAB_NETNS" 2>/dev/null) || return 1
	proc=$(stat -L -c '%d:%i' "/proc/$1/ns/net" 2>/dev/null) || return 1
	[[ "$lab" == "$proc" ]]
}

# pid_is_ours PID: the process lives and belongs to this lab (it runs in the
# lab's namespace or names the lab's state directory on its command line).
# Guards against killing a recycled pid.
pid_is_ours() {
	local pid=$1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	if pid_in_lab_netns "$pid"; then
		return 0
	fi
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$LAB_STATE/"
}

# live_pids: print "name pid" for each recorded process that is still ours.
live_pids() {
	[[ -f "$LAB_PIDS" ]] || return 0
	local name pid
	while read -r name pid _; do
		[[ -n "${name:-}" ]] || continue
		if pid_is_ours "${pid:-}"; then
			printf '%s %s\n' "$name" "$pid"
		fi
	done <"$LAB_PIDS"
}

# started_listening NAME PID PID_FILE ADDR PORT LOG: a lab sender just
# started in the background (lab/chasquid.sh, lab/haraka.sh): record its
# pid (PID_FILE, and lab/state/pids so lab/down stops it) and wait up to
# 20 s until it listens on ADDR:PORT; die naming LOG if it exits first.
started_listening() {
	local name=$1 pid=$2 pid_file=$3 addr=$4 port=$5 logf=$6 i
	echo "$pid" >"$pid_file"
	printf '%s %s\n' "$name" "$pid" >>"$LAB_PIDS"
	for ((i = 0; i < 80; i++)); do
		if ns_exec bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null; then return 0; fi
		pid_alive "$pid" || die "$name exited (see ${logf#"$REPO_ROOT"/})"
		sleep 0.25
	done
	die "$name does not listen on $addr:$port"
}

# stop_pid_file FILE: stop the process whose pid FILE holds, if it is still
# ours (SIGTERM, up to 5 s, then SIGKILL), and remove FILE. For the lab
# senders lab/run starts (lab/chasquid.sh, lab/haraka.sh).
stop_pid_file() {
	local pid i
	pid=$(cat "$1" 2>/dev/null) || return 0
	if pid_is_ours "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			pid_alive "$pid" || break
			sleep 0.1
		done
		if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	rm -f "$1"
}

# smtp_ehlo SERVER [SRC]: one SMTP session up to EHLO (then QUIT) from source
# address SRC (default: the kernel's choice, 127.0.0.1 in the namespace),
# inside the namespace; prints swaks' transcript. Lines of the EHLO reply
# start with "<-  250".
smtp_ehlo() {
	local server=$1 src=${2-}
	ns_exec swaks --server "$server" ${src:+--local-interface "$src"} \
		--quit-after EHLO --ehlo lab-probe.invalid --timeout 10 2>&1 || true
}

# ehlo_has_starttls TRANSCRIPT: the EHLO reply in a swaks transcript lists
# STARTTLS.
ehlo_has_starttls() { grep -Eq '^<-  250[- ]STARTTLS' <<<"$1"; }

# ---------------------------------------------------------------- pebble
# (lab/up, and lab/deploy with its own PEBBLE_STATE and PEBBLE_ADDR)

# make_pebble_certs: a lab CA and, signed by it, the certificate of pebble's
# HTTPS listener (SANs localhost and PEBBLE_ADDR): Debian ships none. Both are
# kept across runs (mailsec trusts the CA through acme.ca_file); made anew
# when missing, when the listener address changed or within a day of expiry.
make_pebble_certs() {
	local d=$PEBBLE_STATE
	mkdir -p "$d"
	if [[ -s "$d/listener-ca.pem" && -s "$d/listener-ca.key" && -s "$d/pebble.crt" && -s "$d/pebble.key" ]] &&
		openssl x509 -in "$d/listener-ca.pem" -noout -checkend 86400 >/dev/null &&
		openssl x509 -in "$d/pebble.crt" -noout -checkend 86400 >/dev/null &&
		openssl x509 -in "$d/pebble.crt" -noout -ext subjectAltName 2>/dev/null | grep -qF "IP Address:$PEBBLE_ADDR" &&
		openssl verify -CAfile "$d/listener-ca.pem" "$d/pebble.crt" >/dev/null 2>&1; then
		return 0
	fi
	log "making the lab CA and pebble's listener certificate in ${d#"$REPO_ROOT"/}"
	rm -f "$d"/listener-ca.* "$d"/pebble.crt "$d"/pebble.key "$d"/pebble.csr
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/listener-ca.key" -out "$d/listener-ca.pem" -days 3650 \
		-subj "/CN=mailsec lab CA (pebble listener)" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/pebble.key" -out "$d/pebble.csr" -subj "/CN=pebble" 2>/dev/null
	openssl x509 -req -in "$d/pebble.csr" -CA "$d/listener-ca.pem" -CAkey "$d/listener-ca.key" \
		-CAcreateserial -out "$d/pebble.crt" -days 825 \
		-extfile <(printf '%s\n' "subjectAltName=DNS:localhost,IP:$PEBBLE_ADDR" \
			"basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
			"extendedKeyUsage=serverAuth") 2>/dev/null
	rm -f "$d/pebble.csr" "$d/listener-ca.srl"
	chmod 600 "$d/listener-ca.key" "$d/pebble.key"
}

write_pebble_conf() {
	make_pebble_certs
	cat >"$PEBBLE_STATE/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "$PEBBLE_ADDR:$PEBBLE_PORT",
    "managementListenAddress": "$PEBBLE_ADDR:$PEBBLE_MGMT_PORT",
    "certificate": "$PEBBLE_STATE/pebble.crt",
    "privateKey": "$PEBBLE_STATE/pebble.key",
    "httpPort": 5002,
    "tlsPort": 5001,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
}

# The cluster lab (LAB_CLUSTER=1, lab/cluster): its definitions, and in
# cluster mode the addresses above that must cross a veth.
# shellcheck source=lab/cluster.sh
source "$LAB_DIR/cluster.sh"
