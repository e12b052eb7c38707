# lab/check-inbound.sh: the lab/check groups for the user-domain fixtures
# of the inbound check (lab/fixtures, docs/lab.md "Fixtures"). Sourced by
# lab/check, whose helpers (pass, fail, fail_with, skip, query, transcript)
# and variables (lab/state/env, RES_ADDR, RES_PORT, CHECK_TMP) it uses.
#
#   fixtures  each fixture is what lab/fixtures.json says it is, seen by
#             independent tools: dig through Unbound (MX, A, AD bit, TLSA,
#             TXT records), swaks (greeting, STARTTLS), openssl s_client
#             (certificate verification against LAB_CA with the host name),
#             ldns-dane -S (DANE, chasing signatures to the fixtures' DS
#             records itself), curl (MTA-STS policy)
#   inbound   `mailsec check --json` of every fixture: schema, colour,
#             qualified_encryption, the findings that must be present and
#             those that must be absent, the MX host and address
#   agree     lab/agree: mailsec check against ldns-dane and testssl.sh
# shellcheck shell=bash

# fx_env_ok DESC: the lab was started with the fixtures.
fx_env_ok() {
	if [[ -z "${FIXTURES:-}" || -z "${FIXTURE_JSON:-}" || -z "${FIXTURE_DS:-}" ]]; then
		skip "$1" "no fixtures in lab/state/env (lab/up with LAB_FIXTURES=0, or an older lab/up)"
		return 1
	fi
}

# mailsec_has_check: the binary under test has the check command.
mailsec_has_check() { "$MAILSEC_BIN" help 2>&1 | grep -Eq '^ +check[[:space:]]'; }

# fx_chain HOST ADDR FILE: the chain HOST at ADDR:25 sends after STARTTLS
# with SNI HOST (openssl s_client -showcerts), as PEM in FILE.
fx_chain() {
	ns_exec timeout 15 openssl s_client -starttls smtp -connect "$2:25" -servername "$1" -showcerts </dev/null 2>/dev/null |
		awk '/-----BEGIN CERTIFICATE-----/ { p = 1 } p { print } /-----END CERTIFICATE-----/ { p = 0 }' >"$3"
	[[ -s "$3" ]]
}

# fx_ldns_dane HOST CHAIN [TLSA_FILE]: ldns-dane's answer for the chain:
# valid, mismatch, none, or "error: ..." (its last line). With TLSA_FILE
# it reads the TLSA records from there (no DNS); otherwise it asks Unbound
# and chases the signatures to the fixtures' DS records (-S -k) itself.
fx_ldns_dane() {
	local host=$1 chain=$2 tlsa=${3-} out
	if [[ -n "$tlsa" ]]; then
		# With the name and port it picks the file's records for
		# _25._tcp.HOST and checks the name (DANE-TA); without them it
		# compares the name with the TLSA owner and always fails.
		out=$(ns_exec timeout 20 ldns-dane -c "$chain" -t "$tlsa" verify "$host" 25 2>&1) || true
	else
		out=$(ns_exec timeout 20 ldns-dane -S -k "$FIXTURE_DS" -r "$RES_ADDR" -c "$chain" verify "$host" 25 2>&1) || true
	fi
	if grep -q 'dane-validated successfully' <<<"$out"; then
		echo valid
	elif grep -q 'no matching DANE TLSA records' <<<"$out"; then
		echo mismatch
	elif grep -Eq 'No TLSA records|No usable TLSA records' <<<"$out"; then
		echo none
	else
		echo "error: $(tail -n 1 <<<"$out")"
	fi
}

# ---------------------------------------------------------------- fixtures

check_fixture() {
	local d=$1 signed=$2 addr=$3 smtp=$4 cert=$5 tlsa=$6 sts=$7 records=$8
	local mx="mx.$d" desc problems want out

	# MX and the MX hosts' addresses, through Unbound; AD exactly if signed.
	# The table's address field: "," between addresses of a host, "+"
	# before the next host (mx2, preference 20; `lab/fixtures hosts`).
	local hosts
	hosts=$("$LAB_DIR/fixtures" hosts | awk -v d="$d" '$1 == d { print $2, $3, $4 }')
	query MX "$d."
	if [[ "$records" == nullmx ]]; then
		want="0 ."
	else
		want=$(awk '{ print $2, $1 "." }' <<<"$hosts" | sort -u)
	fi
	desc="fixture $d: MX '${want//$'\n'/, }', ad=$signed"
	if [[ "$Q_STATUS" == NOERROR && "$Q_AD" == "$signed" && "$(sort <<<"$Q_RRS")" == "$want" ]]; then
		pass "$desc"
	else
		fail "$desc" "status=${Q_STATUS:-none} ad=$Q_AD MX='${Q_RRS//$'\n'/, }'" "$Q_CMD"$'\n'"$Q_OUT"
	fi
	local host
	for host in $(awk '{ print $1 }' <<<"$hosts" | sort -u); do
		query A "$host."
		want=$(awk -v h="$host" '$1 == h { print $3 }' <<<"$hosts" | sort)
		desc="fixture $d: A $host = ${want//$'\n'/, }, ad=$signed"
		if [[ "$Q_STATUS" == NOERROR && "$Q_AD" == "$signed" && "$(sort <<<"$Q_RRS")" == "$want" ]]; then
			pass "$desc"
		else
			fail "$desc" "status=${Q_STATUS:-none} ad=$Q_AD A='${Q_RRS//$'\n'/, }'" "$Q_CMD"$'\n'"$Q_OUT"
		fi
	done
	# The SMTP, certificate and TLSA checks below look at the first MX
	# address (the one of mx.<domain>); lab/fixtures waits for every
	# address's greeting, and mailsec check must show each (fixtures.json).
	addr=${addr%%[,+]*}

	# Greeting and STARTTLS (swaks).
	if [[ "$smtp" != - ]]; then
		out=$(ns_exec swaks --server "$addr" --quit-after EHLO --ehlo lab-check.invalid --timeout 10 2>&1 || true)
		case $smtp in
		busy)
			desc="fixture $d: $mx ($addr) greets with 421"
			if grep -q '^<\*\* 421 ' <<<"$out"; then pass "$desc"; else fail_with "$desc" "no 421" "$out"; fi
			;;
		plain)
			desc="fixture $d: $mx ($addr) answers EHLO without STARTTLS"
			if grep -q '^<-  250' <<<"$out" && ! ehlo_has_starttls "$out"; then pass "$desc"; else fail_with "$desc" "STARTTLS offered or no EHLO reply" "$out"; fi
			;;
		tls* | legacy)
			desc="fixture $d: $mx ($addr) offers STARTTLS"
			if ehlo_has_starttls "$out"; then pass "$desc"; else fail_with "$desc" "no STARTTLS" "$out"; fi
			;;
		esac
	fi

	# The certificate (openssl verifies the chain against LAB_CA and the name).
	if [[ "$smtp" == tls* || "$smtp" == legacy ]]; then
		case $cert in
		ca | rsa) want="Verify return code: 0 (ok)" ;;
		self) want="Verify return code: 18 (self-signed certificate)" ;;
		expired) want="Verify return code: 10 (certificate has expired)" ;;
		esac
		desc="fixture $d: openssl s_client -starttls smtp -verify_hostname $mx: '${want#Verify return code: }'"
		out=$(ns_exec timeout 15 openssl s_client -starttls smtp -connect "$addr:25" -servername "$mx" \
			-CAfile "$LAB_CA" -verify_hostname "$mx" </dev/null 2>&1) || true
		if grep -qF "$want" <<<"$out" && grep -q 'BEGIN CERTIFICATE\|Server certificate' <<<"$out"; then
			pass "$desc"
		else
			fail_with "$desc" "$(grep -m1 'Verify return code' <<<"$out" || echo 'no handshake')" \
				"ip netns exec $LAB_NETNS openssl s_client -starttls smtp -connect $addr:25 -servername $mx -CAfile $LAB_CA -verify_hostname $mx"
		fi
	fi

	# TLS 1.2 only: a TLS 1.3 handshake is refused, a TLS 1.2 one works.
	if [[ "$smtp" == tls12only ]]; then
		local o13 o12
		o13=$(ns_exec timeout 15 openssl s_client -starttls smtp -connect "$addr:25" -servername "$mx" -tls1_3 </dev/null 2>&1) || true
		o12=$(ns_exec timeout 15 openssl s_client -starttls smtp -connect "$addr:25" -servername "$mx" -tls1_2 </dev/null 2>&1) || true
		desc="fixture $d: $mx refuses TLS 1.3 and speaks TLS 1.2 (openssl s_client -tls1_3 / -tls1_2)"
		if ! grep -q 'Protocol  *: TLSv1.3' <<<"$o13" && grep -Eq 'Protocol  *: TLSv1.2|New, TLSv1.2' <<<"$o12"; then
			pass "$desc"
		else
			fail_with "$desc" "unexpected protocols" "$(grep -E 'Protocol|New,|alert' <<<"$o13"$'\n'"$o12")"
		fi
	fi

	# TLSA: securely absent in a signed zone without one; otherwise DANE
	# through ldns-dane, which validates the signatures itself.
	if [[ "$smtp" == tls* && "$tlsa" == - && "$signed" == 1 ]]; then
		query TLSA "_25._tcp.$mx."
		desc="fixture $d: no TLSA for $mx, denial validated (ad)"
		if [[ ("$Q_STATUS" == NXDOMAIN || "$Q_STATUS" == NOERROR) && "$Q_AD" == 1 && -z "$Q_RRS" ]]; then
			pass "$desc ($Q_STATUS)"
		else
			fail "$desc" "status=${Q_STATUS:-none} ad=$Q_AD" "$Q_CMD"$'\n'"$Q_OUT"
		fi
	fi
	if [[ "$tlsa" != - ]]; then
		local chain="$CHECK_TMP/fx-$d.pem" got
		case $tlsa in
		ee+ta) want=valid ;;
		wrong) want=mismatch ;;
		esac
		desc="fixture $d: ldns-dane -S verify $mx 25: $want"
		if ! fx_chain "$mx" "$addr" "$chain"; then
			fail "$desc" "no certificate chain from $addr"
		else
			got=$(fx_ldns_dane "$mx" "$chain")
			if [[ "$got" == "$want" ]]; then pass "$desc"; else fail "$desc" "ldns-dane: $got"; fi
			if [[ "$tlsa" == ee+ta ]]; then
				# Rollover readiness: each record matches on its own.
				query TLSA "_25._tcp.$mx."
				local rr n=0 ok=0
				while IFS= read -r rr; do
					[[ -n "$rr" ]] || continue
					n=$((n + 1))
					printf '_25._tcp.%s. 60 IN TLSA %s\n' "$mx" "$rr" >"$CHECK_TMP/fx-$d-tlsa-$n"
					got=$(fx_ldns_dane "$mx" "$chain" "$CHECK_TMP/fx-$d-tlsa-$n")
					if [[ "$got" == valid ]]; then ok=$((ok + 1)); fi
				done <<<"$Q_RRS"
				desc="fixture $d: each of the TLSA records of $mx matches on its own (ldns-dane -t)"
				if ((n == 2 && ok == 2)) && [[ "$Q_AD" == 1 ]]; then
					pass "$desc ($(awk '{print $1, $2, $3}' <<<"$Q_RRS" | paste -sd, -))"
				else
					fail "$desc" "$ok of $n match, ad=$Q_AD" "$Q_RRS"
				fi
			fi
		fi
	fi

	# MTA-STS: the record and the policy over HTTPS (Unbound, LAB_CA).
	if [[ "$sts" != - ]]; then
		query TXT "_mta-sts.$d."
		desc="fixture $d: _mta-sts TXT v=STSv1"
		if [[ "$Q_STATUS" == NOERROR && "$Q_RRS" == '"v=STSv1; id='* ]]; then pass "$desc"; else fail "$desc" "TXT '${Q_RRS}'" "$Q_OUT"; fi
		local url="https://mta-sts.$d/.well-known/mta-sts.txt" body mxs
		body=$(ns_exec curl -sS --fail --max-time 10 --cacert "$LAB_CA" "$url" 2>&1 | tr -d '\r') || true
		mxs=$(sed -n 's/^mx: //p' <<<"$body" | paste -sd ' ' -)
		if [[ "$sts" == match ]]; then want="$mx"; else want="mx.elsewhere.fx.example"; fi
		desc="fixture $d: curl $url: mode enforce, mx $want"
		if grep -qx 'version: STSv1' <<<"$body" && grep -qx 'mode: enforce' <<<"$body" && [[ "$mxs" == "$want" ]]; then
			pass "$desc"
		else
			fail_with "$desc" "policy differs" "$body"
		fi
	fi

	# TLS-RPT, SPF, DMARC.
	problems=""
	case $records in
	all)
		query TXT "_smtp._tls.$d."
		[[ "$Q_RRS" == '"v=TLSRPTv1; rua=mailto:'* ]] || problems+="TLS-RPT '$Q_RRS'; "
		query TXT "$d."
		[[ "$Q_RRS" == '"v=spf1 mx -all"' ]] || problems+="SPF '$Q_RRS'; "
		query TXT "_dmarc.$d."
		[[ "$Q_RRS" == '"v=DMARC1; p=reject; rua=mailto:'* ]] || problems+="DMARC '$Q_RRS'; "
		desc="fixture $d: TLS-RPT, SPF and DMARC records"
		;;
	nullmx)
		query TXT "$d."
		[[ "$Q_RRS" == '"v=spf1 -all"' ]] || problems+="SPF '$Q_RRS'; "
		desc="fixture $d: SPF -all (RFC 7505 §4.3)"
		;;
	*) desc="" ;;
	esac
	if [[ -n "$desc" ]]; then
		if [[ -z "$problems" ]]; then pass "$desc"; else fail "$desc" "${problems%; }"; fi
	fi
}

check_fixtures() {
	fx_env_ok "fixtures" || return 0
	local line
	local -a f
	while IFS= read -r line; do
		read -r -a f <<<"$line"
		check_fixture "${f[@]}"
	done < <("$LAB_DIR/fixtures" table)
}

# ---------------------------------------------------------------- inbound

# inbound_run DOMAIN OUT: mailsec check --json of DOMAIN in the namespace;
# stdout to OUT, stderr to OUT.err, exit status to OUT.rc.
inbound_run() {
	local rc=0
	# shellcheck disable=SC2086 # MAILSEC_CMD is a command line
	ns_exec timeout 60 $MAILSEC_CMD check --json --allow-private --resolver "$RESOLVER" --roots "$LAB_CA" "$1" \
		>"$2" 2>"$2.err" || rc=$?
	echo "$rc" >"$2.rc"
}

# INBOUND_PARALLEL (LAB_INBOUND_PARALLEL, default 4) bounds the checks
# inbound_all runs at once: each check now makes up to four more TLS
# sessions per address (the versions and weak suites it accepts), and a
# dozen checks at once on two shared cores once starved Knot until Unbound
# timed out on a fixture zone (a SERVFAIL that came out as a failed TLSA
# look-up).
INBOUND_PARALLEL=${LAB_INBOUND_PARALLEL:-4}

# inbound_all PREFIX DOMAIN...: inbound_run of each DOMAIN into
# PREFIX<domain>.json, INBOUND_PARALLEL at a time.
inbound_all() {
	local prefix=$1 d
	shift
	local -a pids=()
	for d in "$@"; do
		inbound_run "$d" "$prefix$d.json" &
		pids+=($!)
		if ((${#pids[@]} >= INBOUND_PARALLEL)); then
			wait "${pids[0]}" || true
			pids=("${pids[@]:1}")
		fi
	done
	wait "${pids[@]}" || true
}

# The jq program that compares one check's JSON with one fixture of
# lab/fixtures.json ($fx); prints one line per difference.
# shellcheck disable=SC2016 # jq variables
INBOUND_JQ='
	. as $r | [.findings[]?.code] as $codes |
	(if $r.schema != "mailsec.check.v1" then "schema \($r.schema | tojson)" else empty end),
	(if $r.domain != $fx.domain then "domain \($r.domain | tojson)" else empty end),
	(if $r.colour != $fx.colour then "colour \($r.colour | tojson), want \($fx.colour) (\($r.colour_reason))" else empty end),
	(if ($fx | has("qualified_encryption")) and $r.qualified_encryption != $fx.qualified_encryption
		then "qualified_encryption \($r.qualified_encryption | tojson), want \($fx.qualified_encryption)" else empty end),
	($fx.findings[] | . as $c | select(any($codes[]; . == $c) | not) | "missing finding \($c)"),
	($fx.absent[] | . as $c | select(any($codes[]; . == $c)) | "unexpected finding \($c)"),
	($fx.mx[] | . as $m | select([$r.mx.hosts[]? | (.name // "" | rtrimstr(".")) as $n | .addresses[]? |
		select($n == $m.host and .ip == $m.address)] | length == 0) | "no MX host \($m.host) with address \($m.address)"),
	(if ($fx.findings | index(["mx.null"])) and $r.mx.kind != "null" then "mx.kind \($r.mx.kind | tojson), want null" else empty end)
'

check_inbound() {
	fx_env_ok "inbound" || return 0
	if ! mailsec_has_check; then
		skip "inbound: mailsec check of every fixture" "this mailsec has no 'check' command yet"
		return 0
	fi
	local d out fx diffs summary
	# A few at once: each check is mostly waiting on the network.
	# shellcheck disable=SC2086 # FIXTURES is a list
	inbound_all "$CHECK_TMP/inbound-" $FIXTURES
	for d in $FIXTURES; do
		out="$CHECK_TMP/inbound-$d.json"
		fx=$(jq -c --arg d "$d" '.fixtures[] | select(.domain == $d)' "$FIXTURE_JSON")
		local desc="inbound: mailsec check $d"
		if [[ -z "$fx" ]]; then
			fail "$desc" "not in $FIXTURE_JSON"
			continue
		fi
		desc+=": $(jq -r '.colour' <<<"$fx"), $(jq -r '.findings | length' <<<"$fx") findings present, $(jq -r '.absent | length' <<<"$fx") absent"
		if [[ "$(cat "$out.rc")" != 0 ]] || ! jq -e . "$out" >/dev/null 2>&1; then
			fail_with "$desc" "exit $(cat "$out.rc"), no JSON" "$(head -c 3000 "$out.err")"$'\n'"$(head -c 2000 "$out")"
			continue
		fi
		diffs=$(jq -r --argjson fx "$fx" "$INBOUND_JQ" "$out" 2>&1) || diffs="jq: $diffs"
		summary=$(jq -r '"colour \(.colour), qualified \(.qualified_encryption), \(.seconds)s: " + ([.findings[].code] | unique | join(" "))' "$out" 2>&1)
		if [[ -z "$diffs" ]]; then
			pass "$desc"
		else
			fail_with "$desc" "$(wc -l <<<"$diffs") difference(s)" "$diffs"$'\n'"got: $summary"
		fi
	done
}

# ---------------------------------------------------------------- agree

check_agree() {
	fx_env_ok "agree" || return 0
	if ! mailsec_has_check; then
		skip "agree: mailsec check against ldns-dane and testssl.sh" "this mailsec has no 'check' command yet"
		return 0
	fi
	local desc="agree: mailsec check against ldns-dane (DANE) and testssl.sh (TLS versions, weak suites, certificate) (lab/agree)" out rc=0
	out=$(LAB_AGREE_QUIET=1 "$LAB_DIR/agree" 2>&1) || rc=$?
	if ((rc == 0)); then
		pass "$desc"
		transcript "$out"
	else
		fail_with "$desc" "exit $rc" "$out"
	fi
}
