# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/status.sh: status (and --json), url, logs.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# Gathers what status and doctor report: STATUS_VENV (classify_venv), PYTHON_VERSION,
# KERNEL_REGISTERED, the processes (TRACKED_PID, STALE_PID, ORPHANS, STRAY_KERNELS,
# RUNNING_OLD_SERVER), SERVER_* (SERVER_NO_AUTH: it answers without a token) and
# STATUS_CODE. Cleans stale runtime files.
gather_status() {
	PYTHON_VERSION="" KERNEL_REGISTERED=false STATUS_CODE=$EXIT_NOT_RUNNING
	classify_venv
	find_env_owner
	[[ $ENV_STATE != ok ]] || PYTHON_VERSION=$(venv_python_version)
	[[ -f $KERNEL_SPEC ]] && KERNEL_REGISTERED=true
	stamped_dependencies
	scan_project
	cleanup_stale_runtime
	ORPHANS=(${ORPHAN_APP_SERVERS[@]+"${ORPHAN_APP_SERVERS[@]}"} ${FOREIGN_SERVERS[@]+"${FOREIGN_SERVERS[@]}"})
	SERVER_STATE="not running" SERVER_PORT="" SERVER_URL="" SERVER_TOKEN="" IDLE_STOPPED_AT=""
	find_running_old_server
	SERVER_NO_AUTH=0
	if [[ -n $TRACKED_PID ]]; then
		SERVER_STATE=starting
		read_server_info "$TRACKED_PID" && SERVER_STATE=running
		STATUS_CODE=$EXIT_OK
		if [[ $SERVER_STATE == running ]] && server_accepts_strangers; then
			SERVER_NO_AUTH=1 STATUS_CODE=$EXIT_ATTENTION
		fi
	elif [[ $STALE_PID != '?' ]] && idle_stop_time && ((${#STRAY_KERNELS[@]} == 0)); then
		# It stopped itself for idleness (APP_IDLE_TIMEOUT): only its PID file is left.
		[[ -z $STALE_PID ]] || drop_stale_pid_file
	elif [[ -n $STALE_PID ]]; then
		SERVER_STATE=dead
		STATUS_CODE=$EXIT_ATTENTION
	fi
	if ((${#ORPHANS[@]} + ${#STRAY_KERNELS[@]} > 0)); then STATUS_CODE=$EXIT_ATTENTION; fi
	return 0
}

# Whether the last server stopped itself for idleness (APP_IDLE_TIMEOUT): its log (the
# log of the last start) ends with jupyter-server's "No kernels for N seconds; shutting
# down". Sets IDLE_STOPPED_AT to the time of that line, as the log gives it (local time).
idle_stop_time() {
	local line="" _level day clock
	IDLE_STOPPED_AT=""
	[[ -f $LOG_FILE ]] || return 1
	line=$(grep -E '\] No kernels for [0-9]+ seconds; shutting down' "$LOG_FILE" 2>/dev/null | tail -n 1) || true
	[[ -n $line ]] || return 1
	# "[I 2026-11-26 13:55:01.123 ServerApp] No kernels for 61 seconds; shutting down."
	read -r _level day clock _ <<<"$line"
	if [[ $day =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ && $clock =~ ^[0-9]{2}:[0-9]{2}:[0-9]{2} ]]; then
		IDLE_STOPPED_AT="$day ${clock:0:8}"
	else
		IDLE_STOPPED_AT="an unknown time"
	fi
}

# What to do about a missing notebook directory (gather_status has run): git drops an
# empty folder (a commit without its .gitkeep). A running jupyter-server answers 404 for
# it, jupyverse (which works in it) an empty folder that is gone: a restart makes it
# again (start's create_isolation_dirs) and serves it.
missing_root_remedy() {
	if [[ $SERVER_STATE == running || $SERVER_STATE == starting ]]; then
		printf '%s' ", and the running server serves it (jupyter-server answers 404); run: scripts/app.sh restart (start makes the folder)"
	else
		printf '%s' "; run: mkdir -p $(printf '%q' "$(rel "$NOTEBOOK_DIR")") (scripts/app.sh start makes it too)"
	fi
}

# status: removes the PID file of a server that stopped itself, unless another app.sh
# command of this project holds the lock (it may be writing a new one) or the file
# changed meanwhile.
drop_stale_pid_file() {
	local pid="" held=$LOCK_HELD
	[[ $held == 1 ]] || try_lock || return 0
	read -r pid 2>/dev/null <"$PID_FILE_IN_USE" || true
	[[ $pid != "$STALE_PID" ]] || rm -f "$PID_FILE_IN_USE"
	[[ $held == 1 ]] || release_lock
}

cmd_status() {
	local json=0 all=0 port=""
	while (($#)); do
		case $1 in
		--json) json=1 ;;
		--all) all=1 ;;
		--port)
			valid_port "${2:-}" || usage_error "status: --port needs a port number (1-65535)"
			port=$2
			shift
			;;
		*) usage_error "status: unknown option '$1'" ;;
		esac
		shift
	done
	register_project
	if [[ -n $port ]]; then
		((all + json == 0)) || usage_error "status: --port goes alone"
		machine_helper port "$((10#$port))"
		return
	fi
	if ((all)); then
		if ((json)); then machine_helper status --json; else machine_helper status; fi
		return
	fi
	gather_status
	((SERVER_NO_AUTH == 0)) || warn "the server (PID $TRACKED_PID) $NO_AUTH_MESSAGE"
	[[ -d $NOTEBOOK_DIR ]] || warn "JupyterLab's root $(rel_dir "$NOTEBOOK_DIR") is missing$(missing_root_remedy)"
	if ((json)); then
		status_json
		return "$STATUS_CODE"
	fi
	printf '%-10s %s (%s) in %s\n' "project:" "$PROJECT_NAME" "$DISPLAY_NAME" "$PROJECT_ROOT"
	printf '%-10s %s\n' "template:" "jupyter-template $TEMPLATE_VERSION, jupyter-lifecycle-spec $SPEC_VERSION"
	case $STATUS_VENV in
	missing) printf '%-10s %s\n' "jupyter:" "$(rel "$JUPYTER_VENV") missing; run: scripts/app.sh bootstrap (start does)" ;;
	previous) printf '%-10s %s\n' "jupyter:" "in $(rel "$VENV_DIR"), as an earlier release laid it out;" \
		"" "scripts/app.sh $([[ -n $TRACKED_PID ]] && printf restart || printf start) moves it to $(rel "$JUPYTER_VENV")" ;;
	broken) printf '%-10s %s\n' "jupyter:" "$(rel "$JUPYTER_VENV") broken (Python or $SERVER missing); run: scripts/app.sh bootstrap" ;;
	switched) printf '%-10s %s\n' "jupyter:" "$(rel "$JUPYTER_VENV") made for $(other_server); the server is now $SERVER: run scripts/app.sh restart (or bootstrap)" ;;
	ok) printf '%-10s %s\n' "jupyter:" "$(rel "$JUPYTER_VENV") ($SERVER)" ;;
	esac
	local owner="app.sh's"
	[[ $ENV_OWNER == app ]] || owner="$ENV_OWNER's: $LOCK_FILE"
	case $ENV_STATE in
	missing) printf '%-10s %s\n' "venv:" "$(rel "$VENV_DIR") missing; run: scripts/app.sh bootstrap (start does)" ;;
	broken) printf '%-10s %s\n' "venv:" "$(rel "$VENV_DIR") broken (its Python does not run); run: scripts/app.sh bootstrap" ;;
	ok) printf '%-10s %s\n' "venv:" "$(rel "$VENV_DIR") (Python ${PYTHON_VERSION:-?}, $owner)" ;;
	esac
	if [[ $KERNEL_REGISTERED == true ]]; then
		printf '%-10s %s\n' "kernel:" "$PROJECT_NAME ($DISPLAY_NAME), in $(rel "$VENV_DIR")"
	else
		printf '%-10s %s\n' "kernel:" "not registered; run: scripts/app.sh bootstrap"
	fi
	case $STAMPED_DEPENDENCIES in
	ok) printf '%-10s %s\n' "deps:" "installed" ;;
	failed) printf '%-10s %s\n' "deps:" "failed at the last bootstrap (JupyterLab works without them); run: scripts/app.sh bootstrap" ;;
	none) printf '%-10s %s\n' "deps:" "none declared (requirements.txt, pyproject.toml)" ;;
	esac
	local root_missing=""
	[[ -d $NOTEBOOK_DIR ]] || root_missing=", MISSING (see the warning)"
	printf '%-10s %s\n' "notebooks:" "$(rel_dir "$NOTEBOOK_DIR") (JupyterLab's root)$root_missing"
	local note=${RUNNING_OLD_SERVER:+, still $RUNNING_OLD_SERVER: switch it to $SERVER with scripts/app.sh restart}
	((SERVER_NO_AUTH == 0)) || note+=", WITHOUT authentication: stop it"
	case $SERVER_STATE in
	running) printf '%-10s %s\n' "server:" "running (PID $TRACKED_PID)$note" \
		"port:" "$SERVER_PORT" "url:" "$(lab_url)" ;;
	starting) printf '%-10s %s\n' "server:" "starting (PID $TRACKED_PID)" ;;
	dead)
		local what="is gone"
		! process_running "$STALE_PID" || what="is not this project's server"
		printf '%-10s %s\n' "server:" "dead: $(rel "$PID_FILE_IN_USE") names PID $STALE_PID, which $what; run: scripts/app.sh stop"
		;;
	*) printf '%-10s %s\n' "server:" "not running${IDLE_STOPPED_AT:+ (it stopped itself at $IDLE_STOPPED_AT, idle: APP_IDLE_TIMEOUT)}" ;;
	esac
	execution_status
	run_status_lines
	if ((${#ORPHANS[@]} + ${#STRAY_KERNELS[@]} == 0)); then
		printf '%-10s %s\n' "orphans:" "none"
	else
		((${#ORPHAN_APP_SERVERS[@]} == 0)) ||
			printf '%-10s %s\n' "orphans:" "servers not tracked by the PID file: PID ${ORPHAN_APP_SERVERS[*]}"
		((${#STRAY_KERNELS[@]} == 0)) || printf '%-10s %s\n' "orphans:" "kernels without their server: PID ${STRAY_KERNELS[*]}"
		((${#ORPHAN_APP_SERVERS[@]} + ${#STRAY_KERNELS[@]} == 0)) || printf '%-10s %s\n' "" "clean up with: scripts/app.sh stop"
		# Never app.sh's to stop: it cannot prove it started them.
		((${#FOREIGN_SERVERS[@]} == 0)) ||
			printf '%-10s %s\n' "orphans:" "servers not tracked by the PID file: PID ${FOREIGN_SERVERS[*]}, not started by this app.sh" \
				"" "(by hand); app.sh stop leaves them: stop them where they run, or: kill ${FOREIGN_SERVERS[*]}"
	fi
	return "$STATUS_CODE"
}

# A JSON string: quotes, backslashes and control characters escaped.
json_string() {
	local value=$1 backslash=\\ quote='"'
	value=${value//"$backslash"/"$backslash$backslash"}
	value=${value//"$quote"/"$backslash$quote"}
	value=${value//$'\n'/"${backslash}n"}
	value=${value//$'\t'/"${backslash}t"}
	value=${value//$'\r'/"${backslash}r"}
	# Any other control character (a path may hold one) as \u00XX.
	local code char
	while [[ $value == *[$'\001'-$'\037']* ]]; do
		char=${value#*[$'\001'-$'\037']} char=${value:$((${#value} - ${#char} - 1)):1}
		printf -v code '\\u%04x' "'$char"
		value=${value//"$char"/$code}
	done
	printf '"%s"' "$value"
}

# A JSON number, or null when VALUE is not a whole number.
json_number() {
	if [[ $1 =~ ^[0-9]+$ ]]; then printf '%s' "$1"; else printf 'null'; fi
}

# A JSON array of numbers (PIDs).
json_numbers() {
	local IFS=,
	printf '[%s]' "$*"
}

# status --json: the same facts for tools, one object on one line.
status_json() {
	local url=null server_side=$SERVER_SIDE_EXECUTION
	[[ $SERVER_STATE == running ]] && url=$(json_string "$(lab_url)")
	# jupyverse always runs cells on the server, whatever the option says (status says so too).
	[[ $SERVER != jupyverse ]] || server_side=true
	printf '{"project": %s, "display_name": %s, "root": %s, "template_version": %s, "spec_version": %s, ' \
		"$(json_string "$PROJECT_NAME")" "$(json_string "$DISPLAY_NAME")" "$(json_string "$PROJECT_ROOT")" \
		"$(json_string "$TEMPLATE_VERSION")" "$(json_string "$SPEC_VERSION")"
	printf '"venv": %s, "project_env": %s, "env_owner": %s, "python": %s, "kernel_registered": %s, "server": %s, "pid": %s, "port": %s, "url": %s, ' \
		"$(json_string "$STATUS_VENV")" "$(json_string "$ENV_STATE")" "$(json_string "$ENV_OWNER")" \
		"$(json_string "$PYTHON_VERSION")" "$KERNEL_REGISTERED" \
		"$(json_string "$SERVER_STATE")" "$(json_number "${TRACKED_PID:-$STALE_PID}")" "$(json_number "$SERVER_PORT")" "$url"
	local idle=null
	[[ -z $IDLE_STOPPED_AT ]] || idle=$(json_string "$IDLE_STOPPED_AT")
	printf '"notebook_dir": %s, "dependencies": %s, "idle_stopped_at": %s, ' "$(json_string "$(rel_dir "$NOTEBOOK_DIR")")" \
		"$(json_string "${STAMPED_DEPENDENCIES:-unknown}")" "$idle"
	local old=null
	[[ -z $RUNNING_OLD_SERVER ]] || old=$(json_string "$RUNNING_OLD_SERVER")
	printf '"server_app": %s, "running_old_server": %s, ' "$(json_string "$SERVER")" "$old"
	printf '"server_side_execution": %s, "runs": %s, "orphan_servers": %s, "stray_kernels": %s, "exit_code": %s}\n' \
		"$server_side" "$(notebook_runs --json)" "$(json_numbers ${ORPHANS[@]+"${ORPHANS[@]}"})" \
		"$(json_numbers ${STRAY_KERNELS[@]+"${STRAY_KERNELS[@]}"})" "$STATUS_CODE"
}

cmd_url() {
	(($# == 0)) || usage_error "url takes no arguments"
	load_process_table
	read_pid_file
	if [[ -n $TRACKED_PID ]] && read_server_info "$TRACKED_PID"; then
		! server_accepts_strangers || die "the server (PID $TRACKED_PID) $NO_AUTH_MESSAGE"
		lab_url
		return 0
	fi
	say "not running; start it with: scripts/app.sh start"
	return "$EXIT_NOT_RUNNING"
}

cmd_logs() {
	local follow=0 lines=""
	while (($#)); do
		case $1 in
		-f | --follow) follow=1 ;;
		-n | --lines)
			(($# >= 2)) || usage_error "logs: $1 needs a number of lines"
			lines=$2
			shift
			;;
		-n*) lines=${1#-n} ;;
		--lines=*) lines=${1#--lines=} ;;
		*) usage_error "logs: unknown option '$1'" ;;
		esac
		shift
	done
	[[ -z $lines || $lines =~ ^[0-9]+$ ]] || usage_error "logs: -n needs a whole number (got '$lines')"
	[[ -f $LOG_FILE ]] || die "no log yet ($(rel "$LOG_FILE")); start the server with: scripts/app.sh start"
	if ((follow)); then
		# -F follows the name, so the log of a restarted server keeps coming.
		exec tail -n "${lines:-+1}" -F "$LOG_FILE"
	elif [[ -n $lines ]]; then
		tail -n "$lines" "$LOG_FILE"
	else
		cat "$LOG_FILE"
	fi
}
