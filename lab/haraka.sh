# lab/haraka.sh: Haraka 3.3.4 (npm, scripts/install-deps) as a lab sender,
# for lab/run (lab-recipes-2 §9). Source it from lab/run after lab/lib.sh; it
# defines functions and runs nothing.
# shellcheck shell=bash
#
# Each instance: the relay plugin (accepts mail from the lab to relay) and
# lab/haraka/outbound_bind.js (its connections leave from its own source
# address); outbound TLS opportunistic by default; temp_fail_intervals =
# LAB_RUN_RETRY seconds, bounded (then it bounces), like the Postfix
# senders' backoff; NODE_EXTRA_CA_CERTS = the lab's roots; the namespace's
# resolv.conf (Unbound).

HARAKA_STATE="$LAB_STATE/haraka"
HARAKA_BIN="$("$REPO_ROOT/scripts/install-deps" --haraka-dir)/node_modules/.bin/haraka"
HARAKA_PORT=2526
# HARAKA_RETRIES: how many temp failures before it bounces (each one a
# delivery attempt LAB_RUN_RETRY seconds after the one before).
HARAKA_RETRIES="${LAB_RUN_HARAKA_RETRIES:-8}"

haraka_dir() { printf '%s/%s\n' "$HARAKA_STATE" "$1"; }

# haraka_write NAME SRC DOMAIN MODE: MODE is may (default outbound TLS:
# any certificate accepted, plain when STARTTLS is not offered), forced
# (force_tls_hosts = zone A's domain and its test slots' domains: TLS with a verified certificate
# required toward A, opportunistic elsewhere) or verify
# (rejectUnauthorized=true, nothing forced: refuses a certificate it cannot
# verify, sends in plain text when STARTTLS is not offered).
haraka_write() {
	local name=$1 src=$2 domain=$3 mode=$4 dir
	dir=$(haraka_dir "$name")
	rm -rf "$dir"
	# haraka -i writes the instance's base files (connection.ini, ...);
	# lab/run then replaces its plugins and settings.
	"$HARAKA_BIN" -i "$dir" >/dev/null 2>&1 || die "haraka -i $dir failed"
	rm -f "$dir/config/host_list"
	mkdir -p "$dir/config" "$dir/plugins" "$dir/queue"
	cp "$LAB_DIR/haraka/outbound_bind.js" "$dir/plugins/outbound_bind.js"
	printf 'relay\noutbound_bind\n' >"$dir/config/plugins"
	printf '[relay]\nacl=true\n' >"$dir/config/relay.ini"
	# lab/run submits from the sender's own address (in the cluster lab
	# outside 127/8: lab/cluster.sh).
	printf '%s\n' 127.0.0.0/8 "$SENDER_SPF_RANGE" >"$dir/config/relay_acl_allow"
	echo "$domain" >"$dir/config/me"
	# nodes=0: one process, no cluster worker (its pid is the one lab/down
	# and lab/run stop).
	printf 'listen=%s:%s\npublic_ip=%s\nnodes=0\n' "$src" "$HARAKA_PORT" "$src" >"$dir/config/smtp.ini"
	printf '[main]\nlevel=protocol\ntimestamps=true\n' >"$dir/config/log.ini"
	# local_mx_ok: the lab's MX hosts are on loopback (Haraka skips them
	# otherwise).
	printf 'local_mx_ok=true\nenable_tls=true\ntemp_fail_intervals=%ss*%s\n' "$RETRY" "$HARAKA_RETRIES" >"$dir/config/outbound.ini"
	echo "$dir/queue" >"$dir/config/queue_dir"
	printf '[main]\nip=%s\nhelo=%s\n' "$src" "$domain" >"$dir/config/outbound_bind.ini"
	{
		echo "[outbound]"
		case $mode in
		may) echo "rejectUnauthorized=false" ;;
		forced)
			echo "rejectUnauthorized=false"
			# Haraka matches force_tls_hosts exactly against the MX
			# host and the recipient domain: zone A and each test
			# slot's domain in A (docs/dns.md "Test slots").
			echo "force_tls_hosts[]=$ZONE_A_NAME"
			local i
			for ((i = 1; i <= ${SLOTS:-0}; i++)); do
				printf 'force_tls_hosts[]=s%03d.%s\n' "$i" "$ZONE_A_NAME"
			done
			;;
		verify) echo "rejectUnauthorized=true" ;;
		*) die "haraka $name: unknown mode $mode" ;;
		esac
	} >"$dir/config/tls.ini"
	echo "$src" >"$dir/src"
}

haraka_start() {
	local name=$1 dir src
	dir=$(haraka_dir "$name")
	src=$(cat "$dir/src")
	ip netns exec "$LAB_NETNS" env NODE_EXTRA_CA_CERTS="$LAB_CA_FILE" \
		"$HARAKA_BIN" -c "$dir" </dev/null >>"$dir/haraka.log" 2>&1 &
	started_listening "haraka-$name" $! "$dir/pid" "$src" "$HARAKA_PORT" "$dir/haraka.log"
}

haraka_stop() { stop_pid_file "$(haraka_dir "$1")/pid"; }

# haraka_queued NAME: the number of messages in its queue (one file per
# message and destination domain).
haraka_queued() {
	local dir
	dir=$(haraka_dir "$1")
	find "$dir/queue" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | wc -l
}

# haraka_submit NAME FROM EMLFILE RCPT...: one mail to its listener (the
# relay ACL lets the lab relay through it).
haraka_submit() {
	local name=$1 from=$2 eml=$3 src dir to
	shift 3
	dir=$(haraka_dir "$name")
	src=$(cat "$dir/src")
	to=$(
		IFS=,
		echo "$*"
	)
	ns_exec swaks -S 1 --server "$src" --port "$HARAKA_PORT" \
		--from "$from" --to "$to" --data "@$eml" >>"$dir/submit.log" 2>&1
}

# haraka_kick NAME: nothing; Haraka keeps its own retry clock
# (temp_fail_intervals).
haraka_kick() { :; }

# haraka_next_round NAME ROUND: the same instance and address, an empty
# queue, the log of the round before kept aside.
haraka_next_round() {
	local name=$1 round=$2 dir
	dir=$(haraka_dir "$name")
	haraka_stop "$name"
	find "$dir/queue" -maxdepth 1 -type f -delete 2>/dev/null || true
	if [[ -f "$dir/haraka.log" ]]; then mv "$dir/haraka.log" "$dir/haraka.log.r$((round - 1))"; fi
	haraka_start "$name"
}
