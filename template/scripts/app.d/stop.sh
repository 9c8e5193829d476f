# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/stop.sh: stop and restart.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# Stops the tracked server, servers app.sh started whose PID file was lost, and the
# kernels they leave; never a server app.sh did not start. Sets STOPPED_ANY.
stop_project() {
	scan_project
	STOPPED_ANY=0
	# First: a jupyverse run's driver would otherwise start its next cell as the server goes.
	stop_run_drivers
	if [[ -n $STALE_PID ]]; then
		say "removing stale PID file (PID $STALE_PID is not this project's Jupyter server)"
	fi
	local -a servers=()
	[[ -n $TRACKED_PID ]] && servers+=("$TRACKED_PID")
	servers+=(${ORPHAN_APP_SERVERS[@]+"${ORPHAN_APP_SERVERS[@]}"})
	if ((${#servers[@]} > 0)); then
		terminate "$STOP_TIMEOUT" "${servers[@]}"
		say "stopped JupyterLab (PID ${servers[*]})"
		STOPPED_ANY=1
		# A server that exits on TERM stops its kernels itself; the kernels of one that
		# had to be killed outlive it: look again.
		((! TERMINATE_KILLED)) || scan_project
	fi
	if ((${#STRAY_KERNELS[@]} > 0)); then
		terminate "$KERNEL_STOP_TIMEOUT" "${STRAY_KERNELS[@]}"
		say "stopped kernels (PID ${STRAY_KERNELS[*]})"
		STOPPED_ANY=1
		load_process_table
		STRAY_KERNELS=()
	fi
	rm -f "$PID_FILE" "$LEGACY_PID_FILE"
	cleanup_stale_runtime
	if ((${#FOREIGN_SERVERS[@]} > 0)); then
		warn "not stopping PID ${FOREIGN_SERVERS[*]}: a Jupyter server in this project that app.sh did not start;" \
			"stop it where it runs, or: kill ${FOREIGN_SERVERS[*]}"
	fi
}

cmd_stop() {
	local all=0 idle=""
	while (($#)); do
		case $1 in
		--all) all=1 ;;
		--idle)
			[[ ${2:-} =~ ^[0-9]{1,6}$ ]] || usage_error "stop: --idle needs a number of minutes"
			idle=$2
			shift
			;;
		*) usage_error "stop: unknown option '$1'" ;;
		esac
		shift
	done
	if ((all)) || [[ -n $idle ]]; then
		# No lock here: each project's own app.sh stop takes its lock, this one's too.
		machine_helper stop ${idle:+--idle "$((10#$idle))"}
		return
	fi
	acquire_lock
	stop_project
	((STOPPED_ANY)) || say "not running"
	return 0
}

cmd_restart() {
	# Bad options must not stop the server: parse them all first.
	parse_start_options restart "$@"
	classify_venv
	[[ $STATUS_VENV != broken ]] ||
		die "$(rel "$JUPYTER_VENV") is broken (JupyterLab or Python missing), so the server keeps running;" \
			"repair it with: scripts/app.sh bootstrap, then: scripts/app.sh restart"
	acquire_lock
	# The port it had, so open tabs and bookmarks reconnect (unless --port says otherwise).
	scan_project
	if [[ -z $START_PORT && -n $TRACKED_PID ]] && read_server_info "$TRACKED_PID"; then
		PREFERRED_PORT=$SERVER_PORT
	fi
	stop_project
	run_start
}
