# lab/cluster.sh: the cluster lab's pieces (lab/cluster; issue 18 points 3
# and 4), sourced by lab/lib.sh, so lab/up, lab/run and lab/down switch to
# the cluster when LAB_CLUSTER=1 (lab/cluster sets it). Defines variables
# and functions and runs nothing else. docs/cluster.md "The cluster lab".
#
# The network: the lab namespace (LAB_NETNS, "the Internet": Unbound, the
# lab mailbox, the senders) holds a bridge $CLUSTER_BRIDGE with
# $CLUSTER_HUB_ADDR; three node namespaces mscl-n1..3 and one for
# PostgreSQL (mscl-pg) hang on it by veth pairs (mscl…). Loopback
# addresses (127/8) cannot cross a veth, so in cluster mode everything that
# crosses one is in 198.18.0.0/15 (RFC 2544 benchmarking space, never on the
# Internet): nodes and PostgreSQL on 198.18.0.0/24, the senders' source
# addresses in 198.19.0.0/16 (on the lab namespace's loopback: any address
# of it can be bound), the lab mailbox and the resolver the nodes use on the
# bridge address.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are for the scripts that source this

CLUSTER_STATE="$LAB_STATE/cluster"
CLUSTER_NODES=3
CLUSTER_BRIDGE="msclbr0"
CLUSTER_NET="198.18.0.0/24"
CLUSTER_HUB_ADDR="198.18.0.1"
CLUSTER_PG_ADDR="198.18.0.100"
CLUSTER_PG_PORT="5432"
CLUSTER_PG_NETNS="mscl-pg"
CLUSTER_SENDER_NET="198.19.0.0/16"
# The node that answers the user's API, web pages and CLI reads in the lab
# (a deployment puts a load balancer in front of every node's web
# listener); the failover kills the leader, which is node 1 (it starts
# first and takes the lock), never this one.
CLUSTER_API_NODE=3
# Debian's server programs of the installed PostgreSQL (whatever its
# version; scripts/install-deps installs "postgresql"), as bench/scan/run
# and internal/pgtest find them.
CLUSTER_PG_BIN=${CLUSTER_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
# The leader lock's key (internal/store/postgres.go lockLeader: lockBase + 5).
CLUSTER_LEADER_KEY=$((0x6d61696c736563 << 8 | 5))

cluster_enabled() { [[ "${LAB_CLUSTER:-0}" == 1 ]]; }

if cluster_enabled; then
	# What crosses a veth must not be in 127/8 (see the top).
	SENDER_SPF_RANGE="$CLUSTER_SENDER_NET"
	MAILBOX_ADDR="$CLUSTER_HUB_ADDR"
	# The fixtures (lab/fixtures) and pebble live on 127/8 addresses: the
	# cluster lab uses tls.issuer = "local" with the CA copied to every
	# node (ACME DNS-01 across nodes: docs/cluster.md).
	LAB_FIXTURES=0
fi

cluster_node_ns() { printf 'mscl-n%s\n' "$1"; }

# cluster_addr NODE [OFFSET]: node NODE's address + OFFSET (0: its primary
# address: DNS, the shared MX address, web, metrics, result mails; 3..7:
# persona mxN in the per-host layout; 9: the broken host).
cluster_addr() { printf '198.18.0.%d\n' $((10 * $1 + ${2:-0})); }

# cluster_ns_exec NODE CMD...: CMD in node NODE's namespace.
cluster_ns_exec() {
	local ns
	ns=$(cluster_node_ns "$1")
	shift
	ip netns exec "$ns" "$@"
}

# cluster_layout CONFIG: shared or per-host, from the single-node lab
# configuration lab/run chose.
cluster_layout() {
	case $(basename "$1") in
	mailsec-per-host.toml) echo per-host ;;
	*) echo shared ;;
	esac
}

# cluster_config NODE: node NODE's configuration file.
cluster_config() { printf '%s/n%s.toml\n' "$CLUSTER_STATE" "$1"; }

# cluster_dsn: the nodes' store.
cluster_dsn() { printf 'postgres://postgres@%s:%s/mailsec?sslmode=disable\n' "$CLUSTER_PG_ADDR" "$CLUSTER_PG_PORT"; }

# The per-host layout's spread: persona host -> the nodes that serve it.
# Every persona on two of the three nodes, so the node the failover kills
# (node 1: mx3, mx5, mx6) takes no persona away. Personas 1 and 2, the
# shared MX address and mta-sts.A are on nodes 1 and 2 (zones.mx_addresses).
declare -A CLUSTER_SPREAD=([mx3]="1 2" [mx4]="2 3" [mx5]="3 1" [mx6]="1 2" [mx7]="2 3")

# toml_list ADDR... -> ["a", "b"].
toml_list() {
	local out="" a
	for a in "$@"; do out+="${out:+, }\"$a\""; done
	printf '[%s]\n' "$out"
}

# cluster_write_configs LAYOUT: one configuration per node. The shared
# settings are those of lab/mailsec.toml (timings, slots, broken host);
# what differs is each node's own addresses, name and data_dir, the store
# (PostgreSQL) and the certificates (the local CA, copied from node 1).
cluster_write_configs() {
	local layout=$1 k j h all=() broken=() mx=() listen mx_hosts=""
	for ((k = 1; k <= CLUSTER_NODES; k++)); do
		all+=("$(cluster_addr "$k")")
		broken+=("$(cluster_addr "$k" 9)")
	done
	# The shared MX address on two nodes, not three (docs/cluster.md
	# "Spread"): Postfix opens at most two sessions per delivery attempt
	# (smtp_mx_session_limit), and with three addresses per host both
	# went to the first host's addresses, so an encrypt sender met one
	# persona per attempt and its test could not tell encrypt from may.
	mx=("$(cluster_addr 1)" "$(cluster_addr 2)")
	# One NS name per node (ns1..ns3), each with its node's address.
	local ns_names=()
	for ((k = 1; k <= CLUSTER_NODES; k++)); do ns_names+=("ns$k"); done
	if [[ $layout == per-host ]]; then
		for h in mx3 mx4 mx5 mx6 mx7; do
			local addrs=()
			for j in ${CLUSTER_SPREAD[$h]}; do addrs+=("$(cluster_addr "$j" "${h#mx}")"); done
			mx_hosts+="$h = $(toml_list "${addrs[@]}")"$'\n'
		done
	fi
	mkdir -p "$CLUSTER_STATE"
	for ((k = 1; k <= CLUSTER_NODES; k++)); do
		local me api
		me=$(cluster_addr "$k")
		api=$(cluster_addr "$CLUSTER_API_NODE")
		listen=("$me:25" "$(cluster_addr "$k" 9):25")
		if [[ $layout == per-host ]]; then
			for h in mx3 mx4 mx5 mx6 mx7; do
				if [[ " ${CLUSTER_SPREAD[$h]} " == *" $k "* ]]; then listen+=("$(cluster_addr "$k" "${h#mx}"):25"); fi
			done
		fi
		cat >"$(cluster_config "$k")" <<EOF
# Written by lab/up (LAB_CLUSTER=1, lab/cluster.sh): node $k of $CLUSTER_NODES,
# layout $layout. Relative paths are relative to this file's directory.
data_dir = "n$k"

[log]
level = "info"

[store]
driver = "postgres"
dsn = "$(cluster_dsn)"

[node]
name = "n$k"
# Short, like the lab's other timings: a dead leader is replaced within a
# heartbeat of PostgreSQL releasing its lock; a dead node's open
# connection records are ended after dead_after.
heartbeat = "1s"
dead_after = "10s"

[zones]
a = "a.mailtest.example."
b = "b.mailtest.example."
# The zones' NS records name the nodes: nsK.A and nsK.B have node K's
# address, and the NS answer carries the three addresses in its additional
# section; Unbound primes its stub zones from that answer (lab/up,
# docs/cluster.md "Name servers").
ns_addresses = $(toml_list "${all[@]}")
ns_names = $(toml_list "${ns_names[@]}")
mx_addresses = $(toml_list "${mx[@]}")
# Every node sends result mails from its own primary address.
spf = "v=spf1 ip4:$CLUSTER_NET -all"
ttl = "30s"
mx_ttl = "2s"
negative_ttl = "2s"
slots = 50
slot_rest = "1m"

[zones.host_addresses]
broken = $(toml_list "${broken[@]}")
$mx_hosts
[dns]
listen = ["$me:53"]
# As lab/mailsec.toml: one resolver for all the senders.
query_log_rows_per_client_per_second = 400

[dnssec]
broken_hosts = ["broken"]

[timing]
smtp_command_timeout = "20s"
downgrade_window = "10s"
mx_rotation = "8s"
ack_after = "20s"

[smtp]
session_max = "45s"
listen = $(toml_list "${listen[@]}")
client_prefix_v4 = 32

[policy_host]
listen = ["$me:443"]

[tls]
# A private CA: its key is made by node 1 and copied with the zone keys
# to the other nodes (docs/cluster.md: ACME DNS-01 is not shared yet).
issuer = "local"

[resolver]
# The lab's validating Unbound, on the bridge address.
address = "$CLUSTER_HUB_ADDR:53"

[web]
listen = ["$me:8080"]
# One base URL for every node: the API node stands for the load balancer.
base_url = "http://$api:8080"
providers = ["prov.sender.lab.internal"]

[result_mail]
source_address = "$me"
retry_base = "2s"
retry_max = "10s"
interval = "1s"
rate_window = "5m"

[metrics]
listen = ["$me:9100"]

[network]
allow_destinations = ["$CLUSTER_NET", "$CLUSTER_SENDER_NET"]
EOF
	done
}

# cluster_create_net: the bridge in the lab namespace, the node and
# PostgreSQL namespaces, their veths and addresses; the senders' /16 on
# the lab namespace's loopback.
cluster_create_net() {
	local k ns
	ns_exec ip link add "$CLUSTER_BRIDGE" type bridge
	ns_exec ip addr add "$CLUSTER_HUB_ADDR/24" dev "$CLUSTER_BRIDGE"
	ns_exec ip link set "$CLUSTER_BRIDGE" up
	ns_exec ip addr add "$CLUSTER_SENDER_NET" dev lo
	for ((k = 1; k <= CLUSTER_NODES + 1; k++)); do
		local addrs=() off
		if ((k <= CLUSTER_NODES)); then
			ns=$(cluster_node_ns "$k")
			for off in 0 3 4 5 6 7 9; do addrs+=("$(cluster_addr "$k" "$off")"); done
		else
			ns=$CLUSTER_PG_NETNS
			addrs=("$CLUSTER_PG_ADDR")
		fi
		! netns_exists "$ns" || die "namespace $ns exists (another cluster lab?): lab/down, or delete it if it is yours"
		ip netns add "$ns"
		mkdir -p "/etc/netns/$ns"
		printf 'nameserver %s\n' "$CLUSTER_HUB_ADDR" >"/etc/netns/$ns/resolv.conf"
		ip -n "$ns" link set lo up
		ip -n "$LAB_NETNS" link add "msclv$k" type veth peer name "msclv${k}n" netns "$ns"
		ip -n "$LAB_NETNS" link set "msclv$k" master "$CLUSTER_BRIDGE" up
		local a
		for a in "${addrs[@]}"; do ip -n "$ns" addr add "$a/24" dev "msclv${k}n"; done
		ip -n "$ns" link set "msclv${k}n" up
		ip -n "$ns" route add default via "$CLUSTER_HUB_ADDR"
	done
	log "cluster network: $CLUSTER_BRIDGE $CLUSTER_NET in $LAB_NETNS; nodes in mscl-n1..$CLUSTER_NODES, PostgreSQL in $CLUSTER_PG_NETNS"
}

# cluster_delete_net: the namespaces this lab made (their veths go with them).
cluster_delete_net() {
	local k ns
	for ((k = 1; k <= CLUSTER_NODES + 1; k++)); do
		if ((k <= CLUSTER_NODES)); then ns=$(cluster_node_ns "$k"); else ns=$CLUSTER_PG_NETNS; fi
		netns_exists "$ns" || continue
		local pid
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$LAB_STATE/"; then kill -KILL "$pid" 2>/dev/null || true; fi
		done
		sleep 0.2
		if [[ -n "$(ip netns pids "$ns" 2>/dev/null)" ]]; then
			log "warning: processes not of this lab remain in $ns: the namespace stays"
			continue
		fi
		ip netns del "$ns" && log "deleted network namespace $ns"
		rm -rf "/etc/netns/$ns"
	done
}

# cluster_psql SQL: one statement as the superuser over the server's unix
# socket, unaligned, tuples only.
cluster_psql() {
	ip netns exec "$CLUSTER_PG_NETNS" runuser -u nobody -- "$CLUSTER_PG_BIN/psql" -h "$CLUSTER_STATE/pg/sock" \
		-p "$CLUSTER_PG_PORT" -U postgres -d "${CLUSTER_PG_DB:-mailsec}" -Atqc "$1"
}

# cluster_start_pg: a fresh PostgreSQL 15 cluster (lab-recipes-2 §10) as
# nobody in its namespace, listening on $CLUSTER_PG_ADDR; database mailsec.
cluster_start_pg() {
	local d="$CLUSTER_STATE/pg"
	rm -rf "$d"
	install -d -o nobody -g nogroup -m 700 "$d" "$d/sock"
	ip netns exec "$CLUSTER_PG_NETNS" runuser -u nobody -- "$CLUSTER_PG_BIN/initdb" -D "$d/data" -U postgres \
		--auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$LAB_LOGS/postgres-initdb.log" 2>&1 ||
		die "initdb failed (${LAB_LOGS#"$REPO_ROOT"/}/postgres-initdb.log)"
	# trust from the nodes' network: a lab on a private bridge.
	printf 'host all all %s trust\n' "$CLUSTER_NET" >>"$d/data/pg_hba.conf"
	ip netns exec "$CLUSTER_PG_NETNS" runuser -u nobody -- "$CLUSTER_PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" \
		-o "-c listen_addresses=$CLUSTER_PG_ADDR -p $CLUSTER_PG_PORT -k $d/sock -c fsync=off -c max_connections=100" \
		-w start >/dev/null || die "PostgreSQL does not start: $(tail -n 5 "$d/server.log" 2>&1)"
	CLUSTER_PG_DB=postgres cluster_psql "CREATE DATABASE mailsec" >/dev/null || die "CREATE DATABASE mailsec failed"
	log "PostgreSQL on $CLUSTER_PG_ADDR:$CLUSTER_PG_PORT (${d#"$REPO_ROOT"/}, fresh)"
}

cluster_stop_pg() {
	local d="$CLUSTER_STATE/pg"
	[[ -f "$d/data/postmaster.pid" ]] || return 0
	ip netns exec "$CLUSTER_PG_NETNS" runuser -u nobody -- "$CLUSTER_PG_BIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 ||
		kill -KILL "$(head -n 1 "$d/data/postmaster.pid")" 2>/dev/null || true
	log "stopped PostgreSQL"
}

# cluster_node_ready NODE: the node's DNS answers SOA of zone A.
cluster_node_ready() {
	local out
	out=$(ns_exec dig +time=1 +tries=1 "@$(cluster_addr "$CLUSTER_WAIT_NODE")" +norec SOA "$ZONE_A" 2>&1)
	grep -q 'status: NOERROR' <<<"$out"
}

# cluster_copy_keys NODE: node 1's keys (zones, DKIM, personas, local CA)
# and the local CA's certificate to node NODE (docs/cluster.md step 3).
cluster_copy_keys() {
	local to="$CLUSTER_STATE/n$1"
	rm -rf "$to/keys"
	mkdir -p "$to/certs"
	cp -a "$CLUSTER_STATE/n1/keys" "$to/keys"
	cp -a "$CLUSTER_STATE/n1/certs/local-ca.pem" "$to/certs/local-ca.pem"
}

# cluster_start_nodes: node 1 first (it makes the keys and the local CA on
# its first start, and takes the leader lock), then the others with its
# keys; LAB_CA is the local CA.
cluster_start_nodes() {
	local k
	for ((k = 1; k <= CLUSTER_NODES; k++)); do
		((k == 1)) || cluster_copy_keys "$k"
		local logf="$LAB_LOGS/mailsec-n$k.log"
		# ip netns exec execs mailsec: $! is the node's own pid (the one
		# the failover kills).
		ip netns exec "$(cluster_node_ns "$k")" "$LAB_BIN" -config "$(cluster_config "$k")" serve </dev/null >"$logf" 2>&1 &
		record_pid "mailsec-n$k" $!
		log "started node n$k (pid $!, $(cluster_addr "$k"), log ${logf#"$REPO_ROOT"/})"
		CLUSTER_WAIT_NODE=$k
		wait_for "node n$k DNS on $(cluster_addr "$k"):53" cluster_node_ready
		if ((k == 1)); then
			wait_for "node n1 leads" cluster_n1_leads
			cp "$CLUSTER_STATE/n1/certs/local-ca.pem" "$LAB_CA_FILE"
		fi
	done
}

cluster_n1_leads() { [[ "$(cluster_leader)" == 1 ]]; }

# cluster_leader: the number of the node holding the leader lock (its
# session's client address), or "".
cluster_leader() {
	local addr
	addr=$(cluster_psql "SELECT host(a.client_addr) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND ((l.classid::bigint << 32) | l.objid::bigint) = $CLUSTER_LEADER_KEY" 2>/dev/null | head -n 1) || return 0
	[[ "$addr" =~ ^198\.18\.0\.([0-9]+)$ ]] || return 0
	echo $((BASH_REMATCH[1] / 10))
}

# cluster_env: the keys lab/up adds to lab/state/env in cluster mode.
cluster_env() {
	env_line CLUSTER_NODES "$CLUSTER_NODES"
	env_line CLUSTER_API_NODE "$CLUSTER_API_NODE"
	# The CLI reads of lab/run (test show, verdict) on the API node.
	env_line MAILSEC_CMD "ip netns exec $(cluster_node_ns "$CLUSTER_API_NODE") $LAB_BIN -config $(cluster_config "$CLUSTER_API_NODE")"
}

# ---------------------------------------------------------------- failover (lab/run)

# cluster_dns_check: the zones' answers from every surviving node (signed,
# authoritative) and through the validating Unbound (AD); prints a JSON
# array of {"server", "query", "ok", "detail"} and returns 1 if one is bad.
cluster_dns_check() {
	local dead=$1 k q out rows="[]" ok bad=0 flags z j missing
	for ((k = 1; k <= CLUSTER_NODES; k++)); do
		((k == dead)) && continue
		for q in "SOA $ZONE_A" "SOA $ZONE_B" "MX $ZONE_A" "DNSKEY $ZONE_A"; do
			# shellcheck disable=SC2086
			out=$(ns_exec dig +time=2 +tries=2 +norec +dnssec "@$(cluster_addr "$k")" $q 2>&1 || true)
			flags=$(grep -m1 '^;; flags:' <<<"$out" || true)
			ok=false
			if grep -q 'status: NOERROR' <<<"$out" && [[ "$flags" == *" aa"* ]] && grep -Eq "[[:space:]]RRSIG[[:space:]]+${q%% *}[[:space:]]" <<<"$out"; then ok=true; else bad=1; fi
			rows=$(jq --arg s "n$k $(cluster_addr "$k")" --arg q "$q" --argjson ok $ok --arg d "$flags" '. + [{server: $s, query: $q, ok: $ok, detail: $d}]' <<<"$rows")
		done
		# The NS RRset names every node (dead ones too: a registry's
		# delegation does not change at a crash), and the additional
		# section gives each name its node's address (docs/cluster.md
		# "Name servers").
		for z in "$ZONE_A" "$ZONE_B"; do
			out=$(ns_exec dig +time=2 +tries=2 +norec +dnssec "@$(cluster_addr "$k")" NS "$z" 2>&1 || true)
			flags=$(grep -m1 '^;; flags:' <<<"$out" || true)
			missing=""
			for ((j = 1; j <= CLUSTER_NODES; j++)); do
				grep -Eq "^${z//./\.}[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+NS[[:space:]]+ns$j\.${z//./\.}\$" <<<"$out" || missing+=" NS ns$j"
				grep -Eq "^ns$j\.${z//./\.}[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+A[[:space:]]+$(cluster_addr "$j")\$" <<<"$out" || missing+=" A of ns$j"
			done
			ok=false
			if grep -q 'status: NOERROR' <<<"$out" && [[ "$flags" == *" aa"* && -z "$missing" ]] && grep -Eq "[[:space:]]RRSIG[[:space:]]+NS[[:space:]]" <<<"$out"; then ok=true; else bad=1; fi
			rows=$(jq --arg s "n$k $(cluster_addr "$k")" --arg q "NS $z" --argjson ok $ok --arg d "$flags${missing:+; missing:$missing}" '. + [{server: $s, query: $q, ok: $ok, detail: $d}]' <<<"$rows")
		done
	done
	for q in "SOA $ZONE_A" "MX $ZONE_A" "SOA $ZONE_B" "MX $ZONE_B"; do
		# shellcheck disable=SC2086
		out=$(ns_exec dig +time=3 +tries=2 +dnssec "@$RESOLVER_ADDR" $q 2>&1 || true)
		flags=$(grep -m1 '^;; flags:' <<<"$out" || true)
		ok=false
		if grep -q 'status: NOERROR' <<<"$out" && [[ "$flags" == *" ad"* ]]; then ok=true; else bad=1; fi
		rows=$(jq --arg s "unbound $RESOLVER_ADDR (validating)" --arg q "$q" --argjson ok $ok --arg d "$flags" '. + [{server: $s, query: $q, ok: $ok, detail: $d}]' <<<"$rows")
	done
	printf '%s\n' "$rows"
	((bad == 0))
}

# cluster_failover LABEL AFTER: run in the background by lab/run's first
# round: after AFTER seconds, kill -9 the leader node, measure the seconds
# until another node holds the leader lock (polled every 0.1 s, at most
# 60 s) and check DNS from the survivors; writes
# $CLUSTER_STATE/failover-LABEL.json.
cluster_failover() {
	local label=$1 after=$2 out="$CLUSTER_STATE/failover-$1.json"
	sleep "$after"
	local leader pid t_kill t_lead="" new="" i
	leader=$(cluster_leader)
	if [[ -z "$leader" || "$leader" == "$CLUSTER_API_NODE" ]]; then
		jq -n --arg l "$leader" '{ok: false, error: ("leader is \"" + $l + "\": not a node the lab may kill (the API node, or none)")}' >"$out"
		return 1
	fi
	pid=$(awk -v n="mailsec-n$leader" '$1 == n { print $2 }' "$LAB_PIDS" | tail -n 1)
	pid_is_ours "$pid" || {
		jq -n --arg l "$leader" '{ok: false, error: ("no live process of node n" + $l)}' >"$out"
		return 1
	}
	kill -KILL "$pid"
	t_kill=$(date +%s.%N)
	log "[$label] failover: killed the leader n$leader (pid $pid) with SIGKILL"
	for ((i = 0; i < 600; i++)); do
		new=$(cluster_leader)
		if [[ -n "$new" && "$new" != "$leader" ]]; then
			t_lead=$(date +%s.%N)
			break
		fi
		sleep 0.1
	done
	local secs=null ok=true dns dns_ok=true
	if [[ -n "$t_lead" ]]; then
		secs=$(awk -v a="$t_kill" -v b="$t_lead" 'BEGIN { printf "%.2f\n", b - a }')
		log "[$label] failover: n$new leads after ${secs}s"
	else
		ok=false
		log "[$label] failover: no other node leads within 60 s"
	fi
	dns=$(cluster_dns_check "$leader") || {
		dns_ok=false
		ok=false
	}
	# The dead node's own addresses: what a resolver or sender meets there.
	local dead_dns dead_smtp
	dead_dns=$(ns_exec dig +time=1 +tries=1 +norec "@$(cluster_addr "$leader")" SOA "$ZONE_A" 2>&1 | grep -E 'status:|timed out|refused|no servers' | head -n 1 || true)
	dead_smtp=$(ns_exec timeout 5 bash -c "exec 3<>/dev/tcp/$(cluster_addr "$leader")/25" 2>&1 | head -n 1 || true)
	jq -n --arg lay "$label" --argjson ok "$ok" --arg killed "n$leader" --arg pid "$pid" --arg new "${new:+n$new}" \
		--argjson secs "$secs" --argjson dns "$dns" --argjson dns_ok "$dns_ok" \
		--arg kill_at "$(date -u -d "@${t_kill%.*}" +%H:%M:%S)" --argjson kill_unix "$t_kill" --arg dead_dns "$dead_dns" --arg dead_smtp "$dead_smtp" \
		'{layout: $lay, ok: $ok, killed: $killed, killed_pid: ($pid | tonumber), killed_at_utc: $kill_at, killed_at_unix: $kill_unix, new_leader: $new,
		  seconds_to_new_leader: $secs, dns_ok: $dns_ok, dns: $dns,
		  dead_node: {dns: $dead_dns, smtp_port_25: (if $dead_smtp == "" then "connected?" else $dead_smtp end)}}' >"$out"
	[[ "$ok" == true ]]
}

# cluster_mail_count LABEL RESULTS_JSON: every result mail in the lab
# mailbox, by Message-ID: how many tests of this layout should have one
# (result_mail_state "sent"), how many distinct mails arrived, how many
# arrived more than once (duplicate_mails); and what the senders' logs
# say of the killed node's addresses. Writes $CLUSTER_STATE/mails-LABEL.json.
cluster_mail_count() {
	local label=$1 results=$2 f ids dup files distinct tests sent killed="" saw
	ids=$(for f in $(find "$MAILBOX_DIR" -type f -path '*/new/*' 2>/dev/null); do
		grep -m1 -i '^Message-ID:' "$f" | tr -d '\r' | awk '{print $2}'
	done | sort)
	files=$(grep -c . <<<"$ids" || true)
	distinct=$(sort -u <<<"$ids" | grep -c . || true)
	# A duplicate is a second mail for one test: its Message-ID is
	# <TEST.RANDOM@domain> (resultmail.Compose), so two nodes composing
	# the same result differ in RANDOM and only the test ID shows it.
	tests=$(sed 's/^<//; s/\..*//' <<<"$ids" | sort -u | grep -c . || true)
	dup=$((files - tests))
	sent=$(jq '[.[] | select(.result_mail_state == "sent")] | length' <<<"$results")
	if [[ -f "$CLUSTER_STATE/failover-$label.json" ]]; then
		killed=$(jq -r '.killed // ""' "$CLUSTER_STATE/failover-$label.json")
	fi
	# What the new leader did after the kill, from the store: the first
	# test it made final and the first result mail it sent (each also waits
	# for its test's own quiet time, timing.ack_after).
	local after_final=null after_sent=null kill_unix
	if [[ -n "$killed" ]]; then
		kill_unix=$(jq -r '.killed_at_unix' "$CLUSTER_STATE/failover-$label.json")
		read -r after_final after_sent < <(cluster_psql "SELECT
			coalesce(round(((min(final_ns) / 1e9) - $kill_unix)::numeric, 2)::text, 'null'),
			coalesce(round(((min(sent_ns) FILTER (WHERE sent_ns > 0) / 1e9) - $kill_unix)::numeric, 2)::text, 'null')
			FROM test_results WHERE final_ns > ($kill_unix * 1e9)::bigint" | tr '|' ' ') || true
	fi
	saw="[]"
	if [[ -n "$killed" ]]; then
		local k=${killed#n} pat
		pat="198\.18\.0\.${k}[0-9]([^0-9]|$)"
		# Per sender: the log lines that name the dead node's addresses with
		# a failure, and the first of them (the lab mailbox's log, where the
		# nodes deliver result mails, is not a sender's).
		local d n first fail='refused|lost connection|timed out|timeout|ECONNREFUSED|ETIMEDOUT|reset|unreachable'
		# This run's senders (lab/run's dirs), not instances of earlier runs.
		for d in "${dirs[@]}"; do
			[[ -d "$d" ]] || continue
			n=$(cat "$d"/maillog* "$d"/*.log 2>/dev/null | grep -E "$pat" | grep -Eic "$fail" || true)
			((n > 0)) || continue
			first=$(cat "$d"/maillog* "$d"/*.log 2>/dev/null | grep -E "$pat" | grep -Eim1 "$fail" | cut -c1-240 || true)
			saw=$(jq --arg s "$(basename "$d")" --argjson n "$n" --arg l "$first" '. + [{sender: $s, lines: $n, example: $l}]' <<<"$saw")
		done
	fi
	jq -n --arg lay "$label" --argjson sent "$sent" --argjson files "$files" --argjson distinct "$distinct" --argjson dup "$dup" --argjson saw "$saw" \
		--argjson after_final "${after_final:-null}" --argjson after_sent "${after_sent:-null}" \
		--argjson tests "$tests" \
		'{layout: $lay, result_mails_expected: $sent, mails_in_mailbox: $files, distinct_message_ids: $distinct, distinct_tests: $tests, duplicate_mails: $dup,
		  seconds_from_kill_to_first_final: $after_final, seconds_from_kill_to_first_result_mail: $after_sent,
		  senders_saw_dead_node: $saw}' \
		>"$CLUSTER_STATE/mails-$label.json"
	log "[$label] mailbox: $files result mail(s) for $tests test(s), $dup duplicate(s); $sent test(s) with a sent result mail"
}
