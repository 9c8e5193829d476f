# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/machine.sh: every project on this machine: the registry, status --all/--port, stop --all/--idle.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# Each app.sh keeps one entry per project root in the user's registry (bootstrap,
# start, status): JSON naming the root, written atomically (a temporary file renamed),
# rewritten only when it changed. status --all reads it (status --port, stop --all and
# stop --idle too); scripts/all_projects.py, run
# with the venv's Python or python3 (standard library only), also scans the processes
# for servers of projects not registered, prunes entries of projects that are gone,
# and asks each server's API without counting as activity. Nothing is written inside
# another project.
readonly MACHINE_HELPER_NAME=all_projects.py

# Sets REGISTRY_DIR: ${XDG_STATE_HOME:-~/.local/state}/jupyter-template/projects (an
# XDG_STATE_HOME that is not absolute is ignored, as the XDG spec says).
registry_dir() {
	local state=${XDG_STATE_HOME:-}
	# Without HOME either: no registry (REGISTRY_DIR is not absolute).
	[[ $state == /* ]] || state=${HOME:+$HOME/.local/state}
	REGISTRY_DIR=$state/jupyter-template/projects
}

# Writes this project's registry entry; never fails the command (a read-only home, say).
register_project() {
	local sum entry content current="" temporary
	registry_dir
	[[ $REGISTRY_DIR == /* ]] || return 0
	# The entry's name: POSIX cksum of the root, the same on every system.
	sum=$(printf '%s\n' "$PROJECT_ROOT" | cksum 2>/dev/null) || return 0
	entry=$REGISTRY_DIR/${sum%% *}.json
	content="{\"root\": $(json_string "$PROJECT_ROOT"), \"template_version\": $(json_string "$TEMPLATE_VERSION"), \"spec_version\": $(json_string "$SPEC_VERSION")}"
	if [[ -f $entry ]]; then
		IFS= read -r current 2>/dev/null <"$entry" || true
		[[ $current == "$content" ]] && return 0
	fi
	temporary=$REGISTRY_DIR/.${sum%% *}.$$
	{
		(umask 077 && mkdir -p "$REGISTRY_DIR") &&
			printf '%s\n' "$content" >"$temporary" &&
			mv -f "$temporary" "$entry"
	} 2>/dev/null || rm -f "$temporary" 2>/dev/null || true
	return 0
}

# status --all, status --port, stop --all, stop --idle: scripts/all_projects.py with
# the given arguments, run by the venv's Python, else python3.
machine_helper() {
	local python=$JUPYTER_PYTHON helper=$PROJECT_ROOT/scripts/$MACHINE_HELPER_NAME
	[[ -f $helper ]] || die "scripts/$MACHINE_HELPER_NAME is missing; bring it back with: copier update --trust"
	if ! venv_is_healthy; then
		python=$(command -v python3 2>/dev/null) || die "this needs Python: run scripts/app.sh bootstrap, or install python3"
	fi
	"$python" -I -S "$helper" "$@"
}

# The status line that says where cells run. With server-side execution, it names
# its server extensions: loaded (from the running server's log) or installed.
execution_status() {
	if [[ $SERVER == jupyverse ]]; then
		printf '%-10s %s\n' "execution:" "server-side (jupyverse: kernels.require_yjs, jupyterlab.server_side_execution)"
		return 0
	fi
	if [[ $SERVER_SIDE_EXECUTION != true ]]; then
		printf '%-10s %s\n' "execution:" "in the browser (server_side_execution is off)"
		unheard_kernels
		return 0
	fi
	local evidence="" extension where="installed" missing=""
	if [[ -n $TRACKED_PID && -f $LOG_FILE ]]; then
		evidence=$(grep 'extension was successfully loaded' "$LOG_FILE" || true)
		where="loaded"
	else
		evidence=$(cat "$JUPYTER_VENV"/etc/jupyter/jupyter_server_config.d/*.json 2>/dev/null || true)
	fi
	for extension in "${SERVER_SIDE_EXECUTION_EXTENSIONS[@]}"; do
		case $evidence in
		*"$extension | extension was successfully loaded"* | *"\"$extension\": true"*) ;;
		*) missing+=" $extension" ;;
		esac
	done
	if [[ -z $missing ]]; then
		printf '%-10s %s\n' "execution:" "server-side (${SERVER_SIDE_EXECUTION_EXTENSIONS[*]} $where)"
	else
		printf '%-10s %s\n' "execution:" "server-side requested, but not $where:$missing; run: scripts/app.sh bootstrap, then restart"
	fi
}

# Without server-side execution, a kernel that runs with no browser attached prints
# to no one: JupyterLab will later show what its tab saw and an empty prompt. Say so,
# from the server's own view of its kernels (the token on stdin; looking is not activity).
unheard_kernels() {
	[[ $SERVER_STATE == running && -x $JUPYTER_PYTHON ]] || return 0
	local count
	count=$(printf '%s' "$SERVER_TOKEN" | "$JUPYTER_PYTHON" -I -S -c '
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "api/kernels?no_track_activity=1",
                                 headers={"Authorization": "token " + sys.stdin.read()})
kernels = json.load(urllib.request.urlopen(request, timeout=5))
print(sum(1 for k in kernels if k.get("execution_state") == "busy" and not k.get("connections")))' "$SERVER_URL" 2>/dev/null) || return 0
	[[ $count =~ ^[1-9][0-9]*$ ]] || return 0
	printf '%-10s %s\n' "" "$count kernel(s) busy with no browser attached: what they print now is lost to the" \
		"" "notebook (a reopened tab shows an empty prompt); server_side_execution keeps it"
}
