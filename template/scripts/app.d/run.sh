# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/run.sh: run: a notebook executed headless on the server (scripts/notebook_run.py speaks its protocols).
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# Bash finds the notebook and the server; scripts/notebook_run.py (the venv's Python)
# speaks the server's protocols: the notebook's collaboration room, its session and
# kernel, the execution queue of jupyter-server-nbmodel, or, with jupyverse, a detached
# driver of its own that sends one cell at a time (jupyverse queues nothing itself).
# The token reaches the helper in its environment only.

RUN_HELPER_NAME=notebook_run.py

cmd_run() {
	local cancel=0 given="" rc=0
	local -a watch=()
	while (($#)); do
		case $1 in
		--wait | --follow) watch+=("$1") ;;
		--cancel) cancel=1 ;;
		--)
			shift
			(($# <= 1)) || usage_error "run: one notebook at a time"
			given=${1:-$given}
			break
			;;
		-*) usage_error "run: unknown option '$1'" ;;
		*)
			[[ -z $given ]] || usage_error "run: one notebook at a time (got '$given' and '$1')"
			given=$1
			;;
		esac
		shift
	done
	[[ -n $given ]] || usage_error "run: which notebook? e.g. scripts/app.sh run $(rel_dir "$NOTEBOOK_DIR")analysis.ipynb"
	((cancel == 0 || ${#watch[@]} == 0)) || usage_error "run: --cancel takes neither --wait nor --follow"
	[[ $SERVER == jupyverse || $SERVER_SIDE_EXECUTION == true ]] ||
		die "run needs server-side execution, which is off in this project; turn it on with:" \
			"copier update --trust -d server_side_execution=true, then: scripts/app.sh bootstrap && scripts/app.sh restart"
	RUN_HELPER=$PROJECT_ROOT/scripts/$RUN_HELPER_NAME
	[[ -f $RUN_HELPER ]] || die "scripts/$RUN_HELPER_NAME is missing; bring it back with: copier update --trust"
	resolve_notebook "$given"
	local python=$JUPYTER_PYTHON
	[[ -x $python ]] || python=${APP_PYTHON:-python3}
	"$python" -I "$RUN_HELPER" check "$NOTEBOOK_FILE" || exit "$EXIT_FAILURE"
	load_process_table
	read_pid_file
	if ((cancel)); then
		if [[ -z $TRACKED_PID ]] || ! read_server_info "$TRACKED_PID"; then
			say "the server is not running: no run in progress"
			return 0
		fi
	elif [[ -z $TRACKED_PID ]] || ! read_server_info "$TRACKED_PID"; then
		START_FOREGROUND=0 START_NO_OPEN=1 START_PORT=""
		acquire_lock
		run_start >/dev/null # its URL is the server's; run prints the notebook's
		release_lock
		load_process_table
		read_pid_file
		if [[ -z $TRACKED_PID ]] || ! read_server_info "$TRACKED_PID"; then
			die "the server did not start; see: scripts/app.sh logs"
		fi
	fi
	find_running_old_server
	[[ -z $RUNNING_OLD_SERVER ]] ||
		die "the running server (PID $TRACKED_PID) is still $RUNNING_OLD_SERVER, and the project's is now $SERVER;" \
			"switch it with: scripts/app.sh restart"
	[[ $SERVER == jupyverse ]] ||
		grep -q 'jupyter_server_nbmodel | extension was successfully loaded' "$LOG_FILE" 2>/dev/null ||
		die "the running server has no server-side execution (jupyter_server_nbmodel is not loaded); run:" \
			"scripts/app.sh bootstrap && scripts/app.sh restart"
	if ((cancel == 0)) && [[ $DOCUMENT_CLEANUP_DELAY != None ]]; then
		warn "APP_DOCUMENT_CLEANUP_DELAY=$DOCUMENT_CLEANUP_DELAY: what the run prints more than" \
			"$DOCUMENT_CLEANUP_DELAY s after the last browser or watcher leaves the notebook is lost"
	fi
	if ((cancel)); then
		run_helper cancel "$NOTEBOOK_PATH" || rc=$?
	else
		run_helper run ${watch[@]+"${watch[@]}"} "$NOTEBOOK_PATH" || rc=$?
	fi
	return "$rc"
}

# Runs the helper against the running server (read_server_info's SERVER_URL and
# SERVER_TOKEN): the token in its environment, never in its arguments.
run_helper() {
	APP_RUN_URL=$SERVER_URL APP_RUN_TOKEN=$SERVER_TOKEN APP_RUN_STATE=$LOG_DIR/runs APP_RUN_SERVER=$SERVER \
		"$JUPYTER_PYTHON" -I "$PROJECT_ROOT/scripts/$RUN_HELPER_NAME" "$@"
}

# Sets NOTEBOOK_FILE (physical path) and NOTEBOOK_PATH (relative to the notebook
# directory, as the server names it) from a path as the user typed it: relative to
# the current directory, the project, or the notebook directory.
resolve_notebook() {
	local given=$1 candidate="" dir root
	if [[ $given == /* ]]; then
		candidate=$given
	else
		for dir in "$PWD" "$PROJECT_ROOT" "$NOTEBOOK_DIR"; do
			if [[ -e $dir/$given ]]; then
				candidate=$dir/$given
				break
			fi
		done
	fi
	[[ -n $candidate && -e $candidate ]] ||
		die "no notebook '$given' (looked in the current directory, the project and $(rel_dir "$NOTEBOOK_DIR"))"
	[[ ! -d $candidate ]] || die "'$given' is a directory; name a notebook (.ipynb) in it"
	[[ $candidate == *.ipynb ]] || die "'$given' is not a notebook: run takes an .ipynb file"
	dir=$(cd -P -- "$(dirname -- "$candidate")" && pwd -P) || die "cannot read the directory of '$given'"
	root=$(cd -P -- "$NOTEBOOK_DIR" 2>/dev/null && pwd -P) || die "no notebook directory $(rel_dir "$NOTEBOOK_DIR")"
	NOTEBOOK_FILE=$dir/${candidate##*/}
	[[ $NOTEBOOK_FILE == "$root"/* ]] ||
		die "'$given' lies outside the notebook directory $(rel_dir "$NOTEBOOK_DIR"), which is all JupyterLab" \
			"serves; move or copy it there"
	NOTEBOOK_PATH=${NOTEBOOK_FILE#"$root"/}
}

# The notebooks with a run in progress, from the running server: one line each, or
# (--json) a JSON list. Nothing when no run was started; the records of a server that
# is gone are dropped.
notebook_runs() {
	local json=${1:-}
	set -- "$LOG_DIR"/runs/*.json
	if [[ ! -e $1 ]]; then
		[[ -z $json ]] || printf '[]'
		return 0
	fi
	if [[ $SERVER_STATE != running || ! -x $JUPYTER_PYTHON || ! -f $PROJECT_ROOT/scripts/$RUN_HELPER_NAME ]]; then
		# With them, the logs of jupyverse drivers (the server, so its drivers, are gone).
		rm -f "$LOG_DIR"/runs/*.json "$LOG_DIR"/runs/*.log
		[[ -z $json ]] || printf '[]'
		return 0
	fi
	run_helper status ${json:+"$json"} 2>/dev/null || { [[ -z $json ]] || printf '[]'; }
}

# The drivers of jupyverse runs (notebook_run.py drive): each ends with its run or its
# server; stop ends them with the server, so nothing of the project outlives a stop.
stop_run_drivers() {
	local i
	local -a drivers=()
	for ((i = 0; i < ${#PS_PIDS[@]}; i++)); do
		[[ ${PS_ARGS[i]} == *" $PROJECT_ROOT/scripts/$RUN_HELPER_NAME drive "* ]] && drivers+=("${PS_PIDS[i]}")
	done
	((${#drivers[@]} == 0)) || terminate "$KERNEL_STOP_TIMEOUT" "${drivers[@]}"
	return 0
}

# status: the "run:" lines.
run_status_lines() {
	local line
	while IFS= read -r line; do
		[[ -n $line ]] && printf '%-10s %s\n' "run:" "$line"
	done <<<"$(notebook_runs)"
	return 0
}
