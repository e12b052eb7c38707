# lab/chasquid.sh: chasquid (Debian 12: 1.11) as a lab sender, for lab/run
# (lab-recipes-2 §8). Source it from lab/run after lab/lib.sh; it defines
# functions and runs nothing.
# shellcheck shell=bash
#
# chasquid has no source-address option and no retry settings:
# - source address: each instance runs as its own numeric uid, and a routing
#   rule inside the lab's namespace gives that uid's connections its address
#   (chasquid_routing);
# - retries: hard-coded (1 min + rand(0–59 s), then 5, 10, 20 min); a restart
#   loads the queue and tries every item at once, so lab/run restarts an
#   instance that still has mail queued every LAB_RUN_RETRY seconds — the
#   same retry interval the Postfix senders get (chasquid_kick).
# Its per-domain TLS memory (data/domaininfo) and MTA-STS cache
# (data/sts-cache) live in the instance's data directory and are kept across
# rounds, as a real server keeps them.

CHASQUID_STATE="$LAB_STATE/chasquid"
CHASQUID_UID_BASE=2000
CHASQUID_PASSWORD="lab-secret"

chasquid_dir() { printf '%s/%s\n' "$CHASQUID_STATE" "$1"; }

# chasquid_routing_base: once per namespace, move the local table below the
# uid rules (pref 100), so a uid rule at pref 10 can pick the source address.
chasquid_routing_base() {
	local rules
	rules=$(ns_exec ip rule show)
	if ! grep -q '^100:.*lookup local' <<<"$rules"; then
		ns_exec ip rule add pref 100 lookup local
		ns_exec ip rule del pref 0 2>/dev/null || true
	fi
}

# chasquid_routing UID SRC: connections of processes of UID come from SRC.
chasquid_routing() {
	local uid=$1 src=$2
	chasquid_routing_base
	ns_exec ip addr add "$src/32" dev lo 2>/dev/null || true
	ns_exec ip route replace local 127.0.0.0/8 dev lo src "$src" table "$uid"
	# The cluster lab's nodes are behind the bridge (lab/cluster.sh).
	if cluster_enabled; then
		ns_exec ip route replace local "$CLUSTER_SENDER_NET" dev lo src "$src" table "$uid"
		ns_exec ip route replace "$CLUSTER_NET" dev "$CLUSTER_BRIDGE" src "$src" table "$uid"
		ns_exec ip route replace local "$CLUSTER_HUB_ADDR" dev lo src "$src" table "$uid"
	fi
	ns_exec ip rule del pref 10 uidrange "$uid-$uid" 2>/dev/null || true
	ns_exec ip rule add pref 10 uidrange "$uid-$uid" lookup "$uid"
}

# chasquid_write NAME SRC DOMAIN CA(0|1) UID: the instance.
chasquid_write() {
	local name=$1 src=$2 domain=$3 ca=$4 uid=$5 dir
	dir=$(chasquid_dir "$name")
	rm -rf "$dir"
	mkdir -p "$dir/etc/certs/$domain" "$dir/etc/domains/$domain" "$dir/data"
	# Its own submission listener needs a certificate (AUTH needs TLS).
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
		-keyout "$dir/etc/certs/$domain/privkey.pem" -out "$dir/etc/certs/$domain/fullchain.pem" \
		-subj "/CN=$domain" -addext "subjectAltName=DNS:$domain,IP:$src" >/dev/null 2>&1 ||
		die "chasquid $name: openssl failed"
	cat >"$dir/etc/chasquid.conf" <<EOF
# Written by lab/run: sender "chasquid-$name" (lab-recipes-2 §8).
hostname: "$domain"
smtp_address: "$src:2525"
submission_address: "$src:1587"
submission_over_tls_address: "$src:1465"
data_dir: "$dir/data"
mail_log_path: "$dir/mail.log"
mail_delivery_agent_bin: "/bin/false"
EOF
	chasquid-util -C="$dir/etc" user-add "lab@$domain" --password="$CHASQUID_PASSWORD" >/dev/null ||
		die "chasquid $name: user-add failed"
	# ca=1: the lab's roots only (a server that can verify the lab's
	# certificates); ca=0: the public roots only (none of the lab's
	# certificates verifies: every TLS session is TLS_INSECURE, and the
	# MTA-STS policy cannot be fetched).
	if ((ca)); then echo "$LAB_CA_FILE" >"$dir/roots"; else echo /etc/ssl/certs/ca-certificates.crt >"$dir/roots"; fi
	echo "$uid" >"$dir/uid"
	echo "$src" >"$dir/src"
	chown -R "$uid:$uid" "$dir"
	chasquid_routing "$uid" "$src"
}

# chasquid_start NAME: start the instance as its uid; records its pid in
# lab/state/pids (lab/down stops it) and in DIR/pid.
chasquid_start() {
	local name=$1 dir uid roots src
	dir=$(chasquid_dir "$name")
	uid=$(cat "$dir/uid")
	roots=$(cat "$dir/roots")
	src=$(cat "$dir/src")
	ip netns exec "$LAB_NETNS" env SSL_CERT_FILE="$roots" SSL_CERT_DIR=/nonexistent \
		setpriv --reuid="$uid" --regid="$uid" --clear-groups \
		chasquid -config_dir "$dir/etc" -logfile "$dir/chasquid.log" -v=1 </dev/null >>"$dir/stderr.log" 2>&1 &
	date +%s >"$dir/started"
	started_listening "chasquid-$name" $! "$dir/pid" "$src" 1587 "$dir/stderr.log"
}

chasquid_stop() { stop_pid_file "$(chasquid_dir "$1")/pid"; }

# chasquid_queued NAME: the number of messages in its queue.
chasquid_queued() {
	local dir
	dir=$(chasquid_dir "$1")
	find "$dir/data/queue" -maxdepth 1 -type f -name 'm:*' 2>/dev/null | wc -l
}

# chasquid_submit NAME FROM EMLFILE RCPT...: one mail through its own
# submission port (AUTH PLAIN over STARTTLS), as a user's mail client would.
chasquid_submit() {
	local name=$1 from=$2 eml=$3 src dir
	shift 3
	dir=$(chasquid_dir "$name")
	src=$(cat "$dir/src")
	local to
	to=$(
		IFS=,
		echo "$*"
	)
	ns_exec swaks -S 1 --server "$src" --port 1587 --tls --auth PLAIN \
		--auth-user "$from" --auth-password "$CHASQUID_PASSWORD" \
		--from "$from" --to "$to" --data "@$eml" >>"$dir/submit.log" 2>&1 || return 1
	# It tries at once on submission: the retry clock starts now.
	date +%s >"$dir/started"
}

# chasquid_kick NAME: the lab's retry clock (see the top): restart the
# instance when mail is queued and LAB_RUN_RETRY seconds passed since it
# (re)started or took the mail.
chasquid_kick() {
	local name=$1 dir
	dir=$(chasquid_dir "$name")
	(($(chasquid_queued "$name") > 0)) || return 0
	(($(date +%s) - $(cat "$dir/started") >= RETRY)) || return 0
	chasquid_stop "$name"
	chasquid_start "$name"
}

# chasquid_next_round NAME ROUND: ready for another round: the same
# address and data (domaininfo, sts-cache kept), an empty queue, the logs of
# the round before kept aside.
chasquid_next_round() {
	local name=$1 round=$2 dir f
	dir=$(chasquid_dir "$name")
	chasquid_stop "$name"
	find "$dir/data/queue" -maxdepth 1 -type f -delete 2>/dev/null || true
	for f in mail.log chasquid.log; do
		if [[ -f "$dir/$f" ]]; then mv "$dir/$f" "$dir/$f.r$((round - 1))"; fi
	done
	chasquid_start "$name"
}
