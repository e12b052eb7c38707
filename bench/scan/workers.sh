# bench/scan/workers.sh — sourced by bench/scan/run --workers-compare
# (issue 18, point 5): the same world scanned by one worker and by two
# worker processes sharing one scan on PostgreSQL, and two workers of which
# one is killed with SIGKILL. Uses run's variables and functions (ns, log,
# die, pids, run, state, world, pki, PG, NS, N, CONC, PERDEST, HOSTTTL,
# TIMEOUT, KILL_AFTER, KILL_RATE, JSON, unbound_pid, postfix_dirs).

# ------------------------------------------------------------- PostgreSQL
# A throwaway cluster in the namespace (lab-recipes-2 §10): initdb refuses
# root, so it runs as nobody in a directory of its own.
pgbase=$(mktemp -d /tmp/mssc-pg.XXXXXX)
chmod 755 "$pgbase"
install -d -o nobody -g nogroup -m 700 "$pgbase/data" "$pgbase/sock" "$pgbase/log"
pgdata=$pgbase/data
trap 'cp "$pgbase/log/server.log" "$run/logs/postgres.log" 2>/dev/null; cleanup; rm -rf "$pgbase"' EXIT
PGADDR=127.0.0.40
log "starting PostgreSQL ($PG) on $PGADDR:5432"
ns runuser -u nobody -- "$PG/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$run/logs/initdb.log" 2>&1 ||
	die "initdb failed (see $run/logs/initdb.log)"
ns runuser -u nobody -- "$PG/pg_ctl" -D "$pgdata" -l "$pgbase/log/server.log" \
	-o "-c listen_addresses=$PGADDR -p 5432 -k $pgbase/sock -c fsync=off -c synchronous_commit=off -c max_connections=200" -w start >&2 ||
	die "PostgreSQL did not start (see $pgbase/log/server.log)"
psql() { ns runuser -u nobody -- "$PG/psql" -h "$PGADDR" -p 5432 -U postgres -d "${PGDB:-mailsec}" -Atq -v ON_ERROR_STOP=1 "$@"; }
PGDB=postgres psql -c 'CREATE DATABASE mailsec' || die "createdb failed"
cat >"$run/scan-pg.toml" <<EOF
# written by bench/scan/run --workers-compare: the scanning mailsec's store
data_dir = "scan-data"
[log]
level = "warn"
[store]
driver = "postgres"
dsn = "postgres://postgres@$PGADDR:5432/mailsec?sslmode=disable"
EOF

# restart_unbound: every run starts with a cold resolver cache, as the
# single-worker figure does.
restart_unbound() {
	local i
	kill -TERM "$unbound_pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do kill -0 "$unbound_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$unbound_pid" 2>/dev/null || true
	start_unbound
}

# maillog_sizes: the byte offset of each Postfix's log, to read one run's
# anvil statistics.
maillog_sizes() {
	local d
	for d in "${postfix_dirs[@]}"; do stat -c %s "$d/maillog" 2>/dev/null || echo 0; done
}
# max_sessions OFFSETS...: the most sessions at once each Postfix's anvil
# counted from one client since the offsets, as "a:N b:N c:N d:N".
max_sessions() {
	local d off n out=()
	for d in "${postfix_dirs[@]}"; do
		off=${1:-0}
		shift || true
		n=$(tail -c +"$((off + 1))" "$d/maillog" 2>/dev/null |
			sed -n 's/.*statistics: max connection count \([0-9]*\) for (.*/\1/p' | sort -n | tail -1)
		out+=("$(basename "$d" | sed 's/^postfix-//'):${n:-0}")
	done
	echo "${out[*]}"
}
xacts() { psql -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'mailsec'"; }

# scan_run NAME WORKERS RATE KILL: one scan of the world as scan id
# bench-N-NAME by WORKERS processes (0: one process without --worker),
# at --rate RATE (0: none); KILL=1 sends SIGKILL to the last worker
# KILL_AFTER seconds after it started. Appends a JSON object to
# $run/workers.jsonl.
scan_run() {
	local name=$1 workers=$2 rate=$3 kill=$4 id="bench-$N-$1" i procs=1 shared=()
	local -a wpid=()
	restart_unbound
	wait_quiet
	((workers > 0)) && { procs=$workers; shared=(--worker); }
	log "run $name: $procs process(es)$( ((workers > 0)) && echo " with --worker"), --rate $rate, --per-destination $PERDEST$( ((kill)) && echo ", one killed after $KILL_AFTER s")"
	local offs x0 t0 t1 x1 killed_at=""
	offs=$(maillog_sizes)
	x0=$(xacts)
	ns_ticks >"$run/ticks0-$name"
	t0=$EPOCHREALTIME
	for ((i = 1; i <= procs; i++)); do
		local cmd=("$state/mailsec" -config "$run/scan-pg.toml" scan "${shared[@]}" --allow-private --resolver 127.0.0.53:53 --roots "$pki/ca.pem"
			--concurrency "$CONC" --per-destination "$PERDEST" --host-cache-ttl "$HOSTTTL" --timeout "$TIMEOUT" --rate "$rate"
			--out "$run/out-$name-$i" --scan-id "$id" --json --quiet --cpuprofile "$run/cpu-$name-$i.pprof")
		if ((i == 1)); then
			cmd+=("$world/domains.txt")
		else
			cmd+=(--resume)
			# the first worker creates and loads the scan; the others join it
			local j
			for ((j = 0; j < 300; j++)); do
				[[ $(psql -c "SELECT loaded_ns > 0 FROM scans WHERE id = '$id'" 2>/dev/null) == t ]] && break
				sleep 0.1
			done
			((j < 300)) || die "scan $id was not loaded in 30 s"
		fi
		echo "   ${cmd[*]}" >&2
		(cd "$run" && GOGC=${SCAN_GOGC:-400} exec ip netns exec "$NS" "${cmd[@]}") >"$run/scan-$name-$i.json" 2>"$run/logs/scan-$name-$i.log" &
		wpid+=($!)
		pids+=($!)
	done
	local -a ticks=()
	local alive=1 p t g granted=0 polls=0
	local kill_at=0
	((kill)) && kill_at=$(awk -v a="$EPOCHREALTIME" -v k="$KILL_AFTER" 'BEGIN { printf "%.3f", a + k }')
	while ((alive)); do
		alive=0
		for i in "${!wpid[@]}"; do
			p=${wpid[$i]}
			kill -0 "$p" 2>/dev/null || continue
			alive=1
			t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
			((t > ${ticks[$i]:-0})) && ticks[$i]=$t
		done
		if ((kill)) && [[ -z $killed_at ]] && awk -v a="$EPOCHREALTIME" -v k="$kill_at" 'BEGIN { exit !(a >= k) }'; then
			p=${wpid[-1]}
			if kill -KILL "$p" 2>/dev/null; then
				killed_at=$EPOCHREALTIME
				log "   SIGKILL to worker $procs (pid $p) at $(awk -v a="$t0" -v b="$killed_at" 'BEGIN { printf "%.1f", b - a }') s"
			else
				killed_at=none
				log "   !! worker $procs had ended before the SIGKILL: raise --domains or lower --kill-after"
			fi
		fi
		# The starts the store granted per rate window, read while the
		# scan runs (a complete scan prunes its windows).
		if ((rate > 0 && polls++ % 5 == 0)); then
			g=$(psql -c "SELECT COALESCE(max(started), 0) FROM scan_rate WHERE scan_id = '$id'" 2>/dev/null || echo 0)
			((${g:-0} > granted)) && granted=$g
		fi
		sleep 0.2
	done
	local src
	for i in "${!wpid[@]}"; do
		src=0
		wait "${wpid[$i]}" || src=$?
		if ((src != 0)) && ! ((kill && i == ${#wpid[@]} - 1)); then
			die "worker $((i + 1)) of run $name failed (exit $src; see $run/logs/scan-$name-$((i + 1)).log)"
		fi
	done
	t1=$EPOCHREALTIME
	sleep 2 # anvil logs its statistics every second
	ns_ticks >"$run/ticks1-$name"
	x1=$(xacts)
	local sess q
	sess=$(max_sessions $offs)
	q=$(psql -F ' ' -c "SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'error'),
		count(*) FILTER (WHERE state NOT IN ('done', 'error')), count(*) FILTER (WHERE attempts > 1), COALESCE(max(attempts), 0),
		round((max(finished_ns) - min(started_ns)) / 1e9, 3)
		FROM scan_items WHERE scan_id = '$id' AND kind = 'domain'")
	local done errs unfinished reattempted maxatt span maxstart rows_left
	read -r done errs unfinished reattempted maxatt span <<<"$q"
	maxstart=$(psql -c "SELECT COALESCE(max(c), 0) FROM (SELECT started_ns / 1000000000, count(*) AS c FROM scan_items
		WHERE scan_id = '$id' AND started_ns > 0 GROUP BY 1) x")
	rows_left=$(psql -c "SELECT (SELECT count(*) FROM scan_rate WHERE scan_id = '$id') + (SELECT count(*) FROM scan_slots WHERE scan_id = '$id')")
	local wall cpu workers_json
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	cpu=$(awk -v t="$(getconf CLK_TCK)" -v w="$wall" -v st="$(
		s=0
		for x in "${ticks[@]}"; do s=$((s + x)); done
		echo $s
	)" '
		FNR == NR { before[$1] = $3; next }
		{ d = $3 - before[$1]; if (d > 0) by[$2] += d }
		END {
			printf "mailsec-scan %.2f", st / t / w
			for (c in by) if (by[c] / t / w >= 0.01) printf "  %s %.2f", c, by[c] / t / w
		}' "$run/ticks0-$name" "$run/ticks1-$name")
	workers_json=$(for i in "${!wpid[@]}"; do
		if [[ -s $run/scan-$name-$((i + 1)).json ]]; then jq -c '{checked, failed, lost, retried, seconds, rate}' "$run/scan-$name-$((i + 1)).json"; else echo '{"killed":true}'; fi
	done | jq -sc .)
	local rate_all
	rate_all=$(awk -v n="$done" -v s="$span" 'BEGIN { printf "%.1f", (s > 0) ? n / s : 0 }')
	log "   $done done, $errs errors, $unfinished unfinished of $domains domains; $reattempted leased more than once (max attempts $maxatt)"
	log "   $rate_all domains/s over ${span} s (first start to last finish; wall $wall s); most starts in one second: $maxstart, most granted in one window: $granted (rate cap $rate)"
	log "   most sessions at once from the scanner per Postfix (cap $PERDEST): $sess"
	log "   database transactions: $((x1 - x0)) ($(awk -v x="$((x1 - x0))" -v n="$domains" 'BEGIN { printf "%.1f", x / n }') per domain); rows of scan_rate/scan_slots left: $rows_left"
	log "   CPU cores by program: $cpu"
	jq -nc --arg name "$name" --argjson processes "$procs" --argjson shared "$((workers > 0))" --argjson rate_cap "$rate" \
		--argjson done "$done" --argjson errors "$errs" --argjson unfinished "$unfinished" --argjson domains "$domains" \
		--argjson reattempted "$reattempted" --argjson max_attempts "$maxatt" --argjson seconds "$span" --argjson rate "$rate_all" \
		--argjson wall "$wall" --argjson max_starts "$maxstart" --argjson granted "$granted" --arg sessions "$sess" --argjson cap "$PERDEST" \
		--argjson xacts "$((x1 - x0))" --argjson rows_left "$rows_left" --arg cpu "$cpu" --argjson workers "$workers_json" \
		--arg killed_after "$([[ $killed_at =~ ^[0-9] ]] && awk -v a="$t0" -v b="$killed_at" 'BEGIN { printf "%.1f", b - a }')" \
		'{name: $name, processes: $processes, shared_caps: ($shared == 1), domains: $domains, done: $done, errors: $errors,
		  unfinished: $unfinished, leased_more_than_once: $reattempted, max_attempts: $max_attempts, seconds: $seconds, rate: $rate,
		  wall_seconds: $wall, rate_cap: $rate_cap, max_starts_per_second: $max_starts, max_granted_per_window: $granted, per_destination_cap: $cap,
		  max_sessions_per_postfix: $sessions, db_transactions: $xacts, db_transactions_per_domain: ($xacts / $domains),
		  shared_rows_left: $rows_left, cpu_cores_by_program: $cpu, workers: $workers,
		  killed_after_seconds: (if $killed_after == "" then null else ($killed_after | tonumber) end)}' >>"$run/workers.jsonl"
}

: >"$run/workers.jsonl"
scan_run 1 0 0 0
scan_run 1-shared 1 0 0
scan_run 2 2 0 0
scan_run 2-kill 2 "$KILL_RATE" 1
jq -s --arg git "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" --argjson cpus "$(nproc)" \
	'{runs: ., ratio_2_to_1: (.[2].rate / .[0].rate), ratio_2_to_1_shared: (.[2].rate / .[1].rate), git: $git, cpus: $cpus}' \
	"$run/workers.jsonl" >"$state/workers.json"
cp "$run"/cpu-*.pprof "$state/" 2>/dev/null || true
log "ratio of 2 workers to 1: $(jq -r '.ratio_2_to_1 | . * 100 | round / 100' "$state/workers.json") (to 1 with --worker: $(jq -r '.ratio_2_to_1_shared | . * 100 | round / 100' "$state/workers.json")); details in $state/workers.json"
if ((JSON)); then
	jq -c '{ratio_2_to_1, runs: [.runs[] | {name, processes, done, unfinished, rate, max_starts_per_second, max_granted_per_window, rate_cap, max_sessions_per_postfix, per_destination_cap, leased_more_than_once}]}' "$state/workers.json"
else
	jq . "$state/workers.json"
fi
