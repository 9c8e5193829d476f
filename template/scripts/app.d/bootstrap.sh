# shellcheck shell=bash disable=SC2034,SC2154
# scripts/app.d/bootstrap.sh: the venv: Jupyter first, then the project's own dependencies and package.
# Part of scripts/app.sh, which sources it and declares the shared state it uses
# (see its shared state block); it only defines functions and constants.

# What bootstrap installs of the project, from its files and settings: DEPENDENCY_FILES
# (relative to the project: requirements.txt, pyproject.toml), PROJECT_INSTALL_ARGS (the
# installer's arguments for them) and PROJECT_PACKAGE (1 when pyproject.toml builds a
# package: installed editable, so the notebooks import the project's own code).
# APP_EXTRAS and APP_GROUPS (comma-separated) choose extras and dependency groups.
dependency_files() {
	local extra group extras="" list
	DEPENDENCY_FILES=() PROJECT_INSTALL_ARGS=() PROJECT_PACKAGE=0
	# A requirements.txt of comments only (as the template creates it) declares nothing.
	if [[ -f $PROJECT_ROOT/requirements.txt ]] && grep -q '^[[:space:]]*[^#[:space:]]' "$PROJECT_ROOT/requirements.txt"; then
		DEPENDENCY_FILES+=(requirements.txt)
		PROJECT_INSTALL_ARGS+=(-r "$PROJECT_ROOT/requirements.txt")
	fi
	if [[ -f $PROJECT_ROOT/pyproject.toml ]]; then
		list=${APP_EXTRAS:-}
		for extra in ${list//,/ }; do extras+=${extras:+,}$extra; done
		if grep -q '^\[build-system\]' "$PROJECT_ROOT/pyproject.toml"; then
			DEPENDENCY_FILES+=(pyproject.toml)
			PROJECT_PACKAGE=1
			PROJECT_INSTALL_ARGS+=(-e "$PROJECT_ROOT${extras:+[$extras]}")
		elif grep -q '^\[project\]' "$PROJECT_ROOT/pyproject.toml"; then
			DEPENDENCY_FILES+=(pyproject.toml)
			PROJECT_INSTALL_ARGS+=(-r "$PROJECT_ROOT/pyproject.toml")
			for extra in ${list//,/ }; do PROJECT_INSTALL_ARGS+=(--extra "$extra"); done
		fi
		list=${APP_GROUPS:-}
		for group in ${list//,/ }; do PROJECT_INSTALL_ARGS+=(--group "$PROJECT_ROOT/pyproject.toml:$group"); done
		# Groups alone (no package, no [project]) still make pyproject.toml a dependency file.
		if [[ -n $list && " ${DEPENDENCY_FILES[*]-} " != *" pyproject.toml "* ]]; then DEPENDENCY_FILES+=(pyproject.toml); fi
	fi
	return 0
}

# The Jupyter packages this project's options call for.
jupyter_requirements() {
	REQUIREMENTS=("${JUPYTER_REQUIREMENTS[@]}")
	if [[ $SERVER == jupyverse ]]; then
		# Its own executor and shared documents: jupyter-server's extensions do not apply.
		REQUIREMENTS=("${JUPYVERSE_REQUIREMENTS[@]}")
		return 0
	fi
	if [[ $SERVER_SIDE_EXECUTION == true ]]; then REQUIREMENTS+=("${SERVER_SIDE_EXECUTION_REQUIREMENTS[@]}"); fi
	return 0
}

# What a bootstrap depends on; a change to any of it makes the next bootstrap work.
bootstrap_fingerprint() {
	local file
	jupyter_requirements
	{
		printf '%s\n' "stamp-v2" "$PROJECT_ROOT" "$PROJECT_NAME" "$DISPLAY_NAME" "${REQUIREMENTS[@]}" \
			"extras=${APP_EXTRAS:-}" "groups=${APP_GROUPS:-}" "exclude=$EXCLUDED_PACKAGES"
		for file in ${DEPENDENCY_FILES[@]+"${DEPENDENCY_FILES[@]}"}; do
			printf '== %s\n' "$file"
			cat "$PROJECT_ROOT/$file"
		done
	} | cksum
}

venv_is_healthy() { [[ -x $VENV_PYTHON ]] && "$VENV_PYTHON" -I -S -c '' 2>/dev/null; }

# uv's relocatable venvs: scripts that find their Python relative to themselves.
venv_is_relocatable() { grep -qx 'relocatable = true' "$VENV_DIR/pyvenv.cfg" 2>/dev/null; }

# Whether the project moved since the last bootstrap, which recorded its root in the
# stamp (STAMPED_ROOT; empty for a stamp of an older app.sh, which did not).
project_moved() {
	local line=""
	STAMPED_ROOT=""
	{ read -r line && read -r line; } 2>/dev/null <"$BOOTSTRAP_STAMP" || true
	[[ $line == root=* ]] && STAMPED_ROOT=${line#root=}
	[[ -n $STAMPED_ROOT && $STAMPED_ROOT != "$PROJECT_ROOT" ]]
}

# The stamp's third line: the project's dependencies at the last bootstrap (ok, failed,
# none; empty for a stamp of an older app.sh). Sets STAMPED_DEPENDENCIES.
stamped_dependencies() {
	local line=""
	STAMPED_DEPENDENCIES=""
	{ read -r line && read -r line && read -r line; } 2>/dev/null <"$BOOTSTRAP_STAMP" || true
	# Only the words bootstrap writes: anything else in the file is unknown.
	case $line in dependencies=ok | dependencies=failed | dependencies=none) STAMPED_DEPENDENCIES=${line#dependencies=} ;; esac
	return 0
}

# Nothing changed since a bootstrap that installed everything.
bootstrap_is_current() {
	stamped_dependencies
	[[ -x $VENV_PYTHON && -x $JUPYTER_LAB && -f $KERNEL_SPEC && -f $BOOTSTRAP_STAMP ]] || return 1
	local stamp=""
	read -r stamp <"$BOOTSTRAP_STAMP" || true
	[[ $stamp == "$(bootstrap_fingerprint)" && $STAMPED_DEPENDENCIES != failed ]]
}

# Sets UV to a uv executable, or empty when the pip route is chosen.
find_uv() {
	UV=""
	[[ ${APP_INSTALLER:-uv} == uv ]] || return 0
	if [[ -x $VENV_DIR/bin/uv ]]; then
		UV=$VENV_DIR/bin/uv
	elif command -v uv >/dev/null 2>&1; then
		UV=$(command -v uv)
	fi
	return 0
}

# Creates the venv, replacing what is at its place (the caller said why).
create_venv() {
	local python=${APP_PYTHON:-python3} clear=()
	if [[ -e $VENV_DIR || -L $VENV_DIR ]]; then
		# Never clear what app.sh did not make: the project's own venv, or a link to one
		# elsewhere (clearing would empty its target).
		if [[ -L $VENV_DIR || (! -f $BOOTSTRAP_STAMP && -n $(ls -A "$VENV_DIR" 2>/dev/null)) ]]; then
			die "$(rel "$VENV_DIR") needs recreating (its python does not run, or it names the project's old place)," \
				"but app.sh did not make it$([[ -L $VENV_DIR ]] && printf ' (a link)') and never clears it; move it away" \
				"(mv $(rel "$VENV_DIR") $(rel "$VENV_DIR").old), then run: scripts/app.sh bootstrap"
		fi
		clear=(--clear)
	fi
	command -v "$python" >/dev/null 2>&1 || die "no '$python' found; install Python 3 or set APP_PYTHON to an interpreter"
	if [[ -n $UV ]]; then
		say "creating $(rel "$VENV_DIR") with uv..."
		# No --seed: install_jupyter installs the seed packages with the Jupyter stack.
		# --relocatable: its scripts find their Python relative to themselves, so the
		# project can move.
		"$UV" venv --quiet --relocatable ${clear[@]+"${clear[@]}"} --python "$(command -v "$python")" "$VENV_DIR" >&2 ||
			die "uv could not create $(rel "$VENV_DIR")"
	else
		say "creating $(rel "$VENV_DIR") with $python -m venv..."
		"$python" -m venv ${clear[@]+"${clear[@]}"} "$VENV_DIR" >&2 || die "$python -m venv could not create $(rel "$VENV_DIR")"
	fi
}

# Installs with uv (or pip): the arguments are requirements and installer options.
# uv runs in the project, so relative paths in requirement files resolve as written.
pip_install() {
	if [[ -n $UV ]]; then
		# On a terminal uv shows its progress bars; elsewhere (CI, logs) only errors.
		local -a options=()
		[[ -t 2 ]] || options+=(--quiet)
		# uv leaves bytecode to Python's first import, which caches it, unless told not
		# to (PYTHONDONTWRITEBYTECODE, common in container images): then every start
		# would compile JupyterLab's imports again (~3 s on 2 cores). pip compiles anyway.
		[[ -z ${PYTHONDONTWRITEBYTECODE:-} ]] || options+=(--compile-bytecode)
		[[ -z $EXCLUDED_PACKAGES ]] || options+=(--excludes "$EXCLUDES_FILE")
		(cd "$PROJECT_ROOT" && "$UV" pip install ${options[@]+"${options[@]}"} --python "$VENV_PYTHON" "$@") >&2
	else
		# pip reads no pyproject.toml as a requirements file, and has no --extra.
		local -a args=()
		while (($#)); do
			if [[ $1 == --extra ]] || [[ $1 == -r && $2 == */pyproject.toml ]]; then
				shift 2
			else
				args+=("$1")
				shift
			fi
		done
		(cd "$PROJECT_ROOT" && "$VENV_PYTHON" -m pip install --disable-pip-version-check ${args[@]+"${args[@]}"}) >&2
	fi
}

# Step one: the Jupyter stack alone, so that no project dependency can leave the user
# without JupyterLab.
install_jupyter() {
	jupyter_requirements
	local -a reinstall=()
	remove_other_server_packages
	# Files deleted from an installed package: installers see it as installed.
	if [[ -f $BOOTSTRAP_STAMP && ! -x $JUPYTER_LAB ]] && ((! SERVER_SWITCHED)); then
		warn "$(rel "$VENV_DIR") is damaged (jupyter-lab is missing); reinstalling"
		if [[ -n $UV ]]; then reinstall=(--reinstall); else reinstall=(--force-reinstall); fi
	fi
	if [[ -z $UV && ${APP_INSTALLER:-uv} == uv ]]; then
		# No uv on this machine: pip installs uv into the venv in ~2 s, and uv then
		# installs JupyterLab in ~2 s where pip alone takes ~40 s.
		say "installing uv into $(rel "$VENV_DIR") (no uv on PATH)..."
		if "$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check uv >&2; then
			UV=$VENV_DIR/bin/uv
		else
			warn "could not install uv; falling back to pip (slower)"
		fi
	fi
	remove_server_side_execution_if_off
	[[ -z ${PYTHONDONTWRITEBYTECODE:-} || -z $UV ]] ||
		say "PYTHONDONTWRITEBYTECODE is set: compiling bytecode now, so starts stay fast"
	write_excludes_file
	seed_packages
	say "installing ${REQUIREMENTS[*]}..."
	pip_install ${reinstall[@]+"${reinstall[@]}"} "${REQUIREMENTS[@]}" ${SEED_PACKAGES[@]+"${SEED_PACKAGES[@]}"} || return 1
	remove_excluded_packages
}

# Sets SEED_PACKAGES to what `uv venv --seed` would put in a venv that has no pip: pip,
# so `%pip install` works in notebooks, and below Python 3.12 setuptools and wheel.
# Installed with the Jupyter stack, in its resolution: --seed resolves them on its own
# first, and its index requests cost ~0.6 s of a warm bootstrap. `python -m venv` seeds
# pip itself.
seed_packages() {
	local minor
	SEED_PACKAGES=()
	set -- "$VENV_DIR"/lib/python*/site-packages/pip
	[[ ! -e $1 ]] || return 0
	SEED_PACKAGES=(pip)
	set -- "$VENV_DIR"/lib/python3.*/site-packages
	minor=${1#"$VENV_DIR"/lib/python3.}
	minor=${minor%%/*}
	[[ $minor == *[!0-9]* || -z $minor ]] || ((minor >= 12)) || SEED_PACKAGES+=(setuptools wheel)
	return 0
}

# A pyproject.toml that declares nothing bootstrap reads may be one it cannot read: a
# merge conflict or a typo in [project] must fail, not pass as "no dependencies". The
# venv's Python checks it (tomllib, Python 3.11+; older ones are not asked).
pyproject_parses() {
	local problem
	[[ -f $PROJECT_ROOT/pyproject.toml && " ${DEPENDENCY_FILES[*]-} " != *" pyproject.toml "* ]] || return 0
	problem=$("$VENV_PYTHON" -I -c '
import sys
try:
    import tomllib
except ImportError:
    sys.exit(0)
try:
    with open(sys.argv[1], "rb") as f:
        tomllib.load(f)
except (OSError, ValueError) as error:
    print(error)
    sys.exit(1)' "$PROJECT_ROOT/pyproject.toml" 2>&1) && return 0
	warn "pyproject.toml is not valid TOML ($problem): its dependencies, if it declares any, are not" \
		"installed; fix it, then run: scripts/app.sh bootstrap"
	return 1
}

# Step two: the project's own dependencies and package, resolved together with the
# Jupyter stack so neither breaks the other. Sets DEPENDENCIES_STATE (ok, failed, none).
install_project() {
	DEPENDENCIES_STATE=none
	report_environment_yml
	if ! pyproject_parses; then
		DEPENDENCIES_STATE=failed
		return 0
	fi
	((${#PROJECT_INSTALL_ARGS[@]} > 0)) || return 0
	if [[ -z $UV ]] && [[ " ${PROJECT_INSTALL_ARGS[*]} " == *" --extra "* || " ${PROJECT_INSTALL_ARGS[*]} " == *"/pyproject.toml "* ]]; then
		warn "pip cannot install pyproject.toml's dependencies (or extras) without building the project; use APP_INSTALLER=uv"
	fi
	local what=${DEPENDENCY_FILES[*]-}
	((! PROJECT_PACKAGE)) || what+=", the project itself, editable"
	say "installing the project's dependencies ($what)..."
	if pip_install "${REQUIREMENTS[@]}" "${PROJECT_INSTALL_ARGS[@]}"; then
		DEPENDENCIES_STATE=ok
		remove_excluded_packages
	else
		DEPENDENCIES_STATE=failed
	fi
}

# A conda environment.yml is not read: this template installs with uv or pip.
report_environment_yml() {
	local file
	for file in environment.yml environment.yaml; do
		[[ -f $PROJECT_ROOT/$file ]] || continue
		say "found $file: not used (this template installs into .venv with uv or pip, not conda);" \
			"list its pip-installable packages in requirements.txt or pyproject.toml"
	done
	return 0
}

# Packages bootstrap never installs: rfc3987-syntax builds ~35 Lark parsers when
# JupyterLab imports jsonschema's format checkers (half its start-up time), for the
# 'iri' formats no Jupyter schema uses (jupyter_server#1559). APP_EXCLUDE='' keeps it.
write_excludes_file() {
	[[ -n $EXCLUDED_PACKAGES ]] || return 0
	# A list of names, split on purpose (load_settings allows no glob characters).
	# shellcheck disable=SC2086
	printf '%s\n' $EXCLUDED_PACKAGES >"$EXCLUDES_FILE" 2>/dev/null || die "cannot write $(rel "$EXCLUDES_FILE"); is the disk full?"
}

# A venv bootstrapped before the exclusion (or by pip, which has none) loses them here.
remove_excluded_packages() {
	excluded_packages_present
	[[ -n $EXCLUDED_PRESENT ]] || return 0
	say "removing $EXCLUDED_PRESENT (it only slows JupyterLab's start)..."
	# Names only (load_settings checked them): split on purpose.
	# shellcheck disable=SC2086
	pip_uninstall $EXCLUDED_PRESENT
}

# Sets EXCLUDED_PRESENT to the excluded packages the venv holds (space-separated).
excluded_packages_present() {
	local package
	EXCLUDED_PRESENT=""
	for package in $EXCLUDED_PACKAGES; do
		set -- "$VENV_DIR"/lib/python*/site-packages/"${package//-/_}"-*.dist-info
		[[ ! -e $1 ]] || EXCLUDED_PRESENT+=${EXCLUDED_PRESENT:+ }$package
	done
	return 0
}

# Uninstalls the packages from the venv, with uv (or pip).
pip_uninstall() {
	if [[ -n $UV ]]; then
		"$UV" pip uninstall --quiet --python "$VENV_PYTHON" "$@" >&2
	else
		"$VENV_PYTHON" -m pip uninstall --quiet --yes "$@" >&2
	fi
}

# Server-side execution turned off (copier update): its server extensions must go,
# or they keep loading. A project's own dependency files may bring them back.
remove_server_side_execution_if_off() {
	[[ $SERVER_SIDE_EXECUTION != true ]] || return 0
	[[ -f $VENV_DIR/etc/jupyter/jupyter_server_config.d/jupyter_server_nbmodel.json ]] || return 0
	say "server-side execution is off: removing ${SERVER_SIDE_EXECUTION_PACKAGES[*]}..."
	pip_uninstall "${SERVER_SIDE_EXECUTION_PACKAGES[@]}"
}

# The server switched (copier update -d server=...): the packages only the other
# server needed go; what anything else in the venv (the project's dependencies, the
# user's own) still needs stays. Before the new server's install, since the two
# servers' packages write the same files (jupyterlab-js and jupyterlab both install
# share/jupyter/lab): what the new server shares with the old comes back with it.
# Sets SERVER_SWITCHED=1 when the other server was installed.
remove_other_server_packages() {
	local -a other
	local unused
	SERVER_SWITCHED=0
	if [[ $SERVER == jupyverse ]]; then
		other=("${JUPYTER_REQUIREMENTS[@]}" "${SERVER_SIDE_EXECUTION_REQUIREMENTS[@]}")
	else
		other=("${JUPYVERSE_REQUIREMENTS[@]}")
	fi
	venv_has_other_server || return 0
	SERVER_SWITCHED=1
	unused=$(packages_only_needed_by "${REQUIREMENTS[@]}" -- "${other[@]}") || return 0
	[[ -n $unused ]] || return 0
	say "the server is now $SERVER: removing the $(wc -w <<<"$unused" | tr -d ' ') packages only the other server needed..."
	# shellcheck disable=SC2086 # names, one a word
	pip_uninstall $unused
}

# The venv holds the server this project had before a copier update switched it.
venv_has_other_server() {
	local marker=jupyverse
	[[ $SERVER != jupyverse ]] || marker=jupyter_server
	set -- "$VENV_DIR"/lib/python*/site-packages/"$marker"-*.dist-info
	[[ -e $1 ]]
}

# Sets STATUS_VENV, what the venv is: missing; unbootstrapped, the project's own (no
# stamp: app.sh did not make it, bootstrap fills it); broken, app.sh's without Python or
# the server; switched, made for the other server before a copier update switched it
# (bootstrap installs the new one); ok.
classify_venv() {
	if [[ ! -d $VENV_DIR ]]; then
		STATUS_VENV=missing
	elif [[ ! -f $BOOTSTRAP_STAMP ]]; then
		STATUS_VENV=unbootstrapped
	elif [[ ! -x $VENV_PYTHON ]]; then
		STATUS_VENV=broken
	elif [[ -x $JUPYTER_LAB ]]; then
		STATUS_VENV=ok
	elif venv_has_other_server; then
		STATUS_VENV=switched
	else
		STATUS_VENV=broken
	fi
}

# The server this project does not use: jupyter-server or jupyverse.
other_server() { if [[ $SERVER == jupyverse ]]; then printf jupyter-server; else printf jupyverse; fi; }

# Prints the installed distributions that only the requirements after -- need (with
# their dependencies, as installed), none that the requirements before -- or any other
# installed distribution needs.
packages_only_needed_by() {
	"$VENV_PYTHON" -I "$PROJECT_ROOT/scripts/venv_packages.py" "$@"
}

# Spec section 2: the kernel lives in the venv, never in the user's kernel directory.
# Writes what `python -m ipykernel install --sys-prefix --name ... --display-name ...
# --env ...` writes (ipykernel's kernelspec.py: its logos and this kernel.json, indent 1),
# without importing ipykernel, jupyter_client and traitlets (~0.3 s, and ~1 s more
# compiling their bytecode on a new venv). A test compares it with ipykernel's own.
register_kernel() {
	say "registering kernel '$PROJECT_NAME' ($DISPLAY_NAME) in $(rel "$VENV_DIR")..."
	"$VENV_PYTHON" -I -c '
import json, os, shutil, sys
from importlib.util import find_spec
destination, display_name, *env = sys.argv[1:]
argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
if sys.implementation.name == "cpython":  # debugpy: no frozen modules
    argv.insert(1, "-Xfrozen_modules=off")
spec = {
    "argv": argv,
    "display_name": display_name,
    "language": "python",
    "metadata": {"debugger": True, "supported_encryption": ["curve"]},
    "kernel_protocol_version": "5.5",
    "env": dict(zip(env[::2], env[1::2])),
}
resources = os.path.join(find_spec("ipykernel").submodule_search_locations[0], "resources")
if os.path.isdir(destination):
    shutil.rmtree(destination)
shutil.copytree(resources, destination)
with open(os.path.join(destination, "kernel.json"), "w") as file:
    json.dump(spec, file, indent=1)' "${KERNEL_SPEC%/*}" "$DISPLAY_NAME" \
		IPYTHONDIR "$PROJECT_ROOT/.ipython" MPLCONFIGDIR "$PROJECT_ROOT/.cache/matplotlib"
}

# The project's JupyterLab defaults, kept in the venv; bootstrap and start apply them
# again, since installing packages may undo them:
# - one kernel, the project's: ipykernel's own spec comes back with every install of
#   ipykernel, and other frontends (VS Code, jupyter console, nbclient) start it without
#   this project's IPYTHONDIR and MPLCONFIGDIR (launch_server also keeps jupyter_client
#   from adding it back from the ipykernel package);
# - no phoning home unless asked: JupyterLab asks every new browser whether to fetch
#   jupyter.org's news (and, once allowed, checks PyPI for updates). Written once: an
#   edited file is the user's.
# - no rebuild check at page load: every JupyterLab tab asks /lab/api/build, which
#   runs `node yarn.js config --json` (~1 s of CPU) whenever node is on PATH, to tell
#   whether a source extension needs `jupyter lab build`; prebuilt extensions (pip) never
#   do. A user of source extensions runs `jupyter lab build` after installing them, as
#   before. Written once, only when absent: labextension disable --sys-prefix merges in.
apply_venv_defaults() {
	[[ -d $VENV_DIR ]] || return 0
	if [[ $PROJECT_NAME != python3 && -d $NATIVE_KERNEL_DIR ]]; then
		rm -rf "$NATIVE_KERNEL_DIR" || warn "cannot remove $(rel "$NATIVE_KERNEL_DIR")"
	fi
	if [[ ! -e $LAB_PAGE_CONFIG_FILE ]]; then
		{ mkdir -p "${LAB_PAGE_CONFIG_FILE%/*}" && printf '%s\n' '{"buildCheck": false}' >"$LAB_PAGE_CONFIG_FILE"; } 2>/dev/null ||
			warn "cannot write $(rel "$LAB_PAGE_CONFIG_FILE")"
	fi
	[[ -f $LAB_DEFAULTS_FILE ]] && return 0
	{ mkdir -p "${LAB_DEFAULTS_FILE%/*}" &&
		printf '%s\n' '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
			>"$LAB_DEFAULTS_FILE"; } 2>/dev/null || warn "cannot write $(rel "$LAB_DEFAULTS_FILE")"
	return 0
}

warn_user_kernel_collision() {
	local dir
	for dir in "$HOME/.local/share/jupyter/kernels" "$HOME/Library/Jupyter/kernels"; do
		if [[ -d $dir/$PROJECT_NAME ]]; then
			warn "a kernel named '$PROJECT_NAME' is also in your user kernel directory ($dir/$PROJECT_NAME)" \
				"and may shadow this project's in other tools; remove it with: jupyter kernelspec remove $PROJECT_NAME"
		fi
	done
}

cmd_bootstrap() {
	local force=0
	while (($#)); do
		case $1 in
		--force) force=1 ;;
		*) usage_error "bootstrap: unknown option '$1'" ;;
		esac
		shift
	done
	acquire_lock
	register_project
	run_bootstrap "$force"
	[[ $DEPENDENCIES_STATE != failed ]] || return "$EXIT_FAILURE"
}

# Bootstraps; returns 0 also when only the project's dependencies failed
# (DEPENDENCIES_STATE=failed): JupyterLab is there, and the caller decides.
run_bootstrap() {
	local force=$1 started=$SECONDS fingerprint
	DEPENDENCIES_STATE=current
	create_isolation_dirs
	dependency_files
	if ((! force)) && bootstrap_is_current; then
		apply_venv_defaults
		say "already bootstrapped; nothing changed (use --force to reinstall)"
		return 0
	fi
	find_uv
	if ! venv_is_healthy; then
		[[ -e $VENV_DIR ]] && warn "$(rel "$VENV_DIR") is broken (its python does not run); recreating it"
		create_venv
	elif project_moved && ! venv_is_relocatable; then
		say "the project moved from $STAMPED_ROOT: recreating $(rel "$VENV_DIR"), whose scripts name the old place"
		create_venv
	fi
	install_jupyter || die "installing JupyterLab failed (see above); fix it and run: scripts/app.sh bootstrap"
	register_kernel || die "registering the kernel failed (see above)"
	install_project
	apply_venv_defaults
	fingerprint=$(bootstrap_fingerprint)
	# The project root tells a later command that the project moved; the dependencies'
	# state, that they still need a bootstrap.
	printf '%s\n%s\n%s\n' "$fingerprint" "root=$PROJECT_ROOT" "dependencies=$DEPENDENCIES_STATE" 2>/dev/null >"$BOOTSTRAP_STAMP" ||
		die "cannot write $(rel "$BOOTSTRAP_STAMP"); is the disk full?"
	warn_user_kernel_collision
	report_what_still_runs_the_old_venv
	if [[ $DEPENDENCIES_STATE == failed ]]; then
		warn "the project's dependencies failed to install (the installer said why, above);" \
			"JupyterLab works without them. Fix ${DEPENDENCY_FILES[*]-them}, then run: scripts/app.sh bootstrap"
		return 0
	fi
	say "bootstrapped in $((SECONDS - started))s: kernel '$PROJECT_NAME' ready in $(rel "$VENV_DIR")"
	hint_missing_imports
}

# Prints, one a line, what the project's notebooks import that is neither in Python's
# standard library, nor installed in the venv, nor a module beside the notebook: the
# distribution to install, by its usual name. Parses the notebooks (json, ast), never
# runs them.
missing_imports() {
	# The project's own modules are not missing: a module or package at its top level,
	# under src/ or beside any of its notebooks, and one a notebook writes with %%file or
	# %%writefile. An import name that is not its distribution's (mpl_toolkits is
	# matplotlib's) is named by its distribution.
	local notebooks
	[[ -x $VENV_PYTHON ]] || return 0
	notebooks=$(project_notebooks)
	[[ -n $notebooks ]] || return 0 # no notebook: no Python to start
	printf '%s\n' "$notebooks" | "$VENV_PYTHON" -I -c '
import ast, importlib.util, json, os, posixpath, shlex, sys
# Import names that are not the name of the distribution that provides them.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow", "yaml": "pyyaml",
                 "bs4": "beautifulsoup4", "skimage": "scikit-image", "dateutil": "python-dateutil",
                 "Bio": "biopython", "attr": "attrs", "google": "google-api-python-client",
                 "mpl_toolkits": "matplotlib", "IPython": "ipython", "jwt": "PyJWT", "dotenv": "python-dotenv",
                 "serial": "pyserial", "usb": "pyusb", "OpenSSL": "pyOpenSSL", "Crypto": "pycryptodome",
                 "nacl": "PyNaCl", "docx": "python-docx", "pptx": "python-pptx", "magic": "python-magic",
                 "fitz": "PyMuPDF", "osgeo": "GDAL", "shapefile": "pyshp", "umap": "umap-learn",
                 "zmq": "pyzmq", "git": "GitPython", "dns": "dnspython", "MySQLdb": "mysqlclient",
                 "gi": "PyGObject", "wx": "wxPython", "websocket": "websocket-client", "socks": "PySocks",
                 "slugify": "python-slugify", "Levenshtein": "python-Levenshtein", "ruamel": "ruamel.yaml",
                 "pkg_resources": "setuptools"}
root, cells = sys.argv[1], {}
for path in filter(None, sys.stdin.read().splitlines()):
    try:
        with open(path, encoding="utf-8") as file:
            found = json.load(file).get("cells", [])
    except (OSError, ValueError, AttributeError):
        continue
    sources = []
    for cell in found:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.append("".join(source) if isinstance(source, list) else str(source))
    cells[path] = sources
# Modules of the project itself: at its top level, under src/, beside any notebook.
local = set()
for folder in {root, os.path.join(root, "src"), *map(os.path.dirname, cells)}:
    try:
        names = os.listdir(folder)
    except OSError:
        continue
    for name in names:
        if name.endswith((".py", ".so", ".pyd")) or os.path.isdir(os.path.join(folder, name)):
            local.add(name.partition(".")[0])
# Modules the notebooks write themselves: %%file NAME.py or %%writefile [-a] NAME.py.
for source in (s for sources in cells.values() for s in sources):
    first = source.lstrip().partition("\n")[0].split(None, 1)
    if first and first[0] in ("%%file", "%%writefile") and len(first) == 2:
        try:
            target = next((arg for arg in shlex.split(first[1]) if not arg.startswith("-")), "")
        except ValueError:
            continue
        if target.endswith(".py"):
            parts = [part for part in posixpath.normpath(target).split("/") if part not in ("", ".", "..")]
            local.update({parts[-1][: -len(".py")], parts[0].partition(".")[0]} if parts else ())
seen, missing = set(), []
for source in (s for sources in cells.values() for s in sources):
    # IPython magics and shell escapes are not Python.
    lines = ["" if line.lstrip().startswith(("%", "!", "?")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        continue
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for top in (name.partition(".")[0] for name in names):
            if top in seen:
                continue
            seen.add(top)
            if top in sys.stdlib_module_names or top in local or importlib.util.find_spec(top) is not None:
                continue
            missing.append(DISTRIBUTIONS.get(top, top))
print("\n".join(sorted(set(missing), key=str.lower)))' "$PROJECT_ROOT" 2>/dev/null || true
}

hint_missing_imports() {
	local missing
	missing=$(missing_imports)
	[[ -n $missing ]] || return 0
	warn "the notebooks import what is not installed: ${missing//$'\n'/, }; $(missing_imports_remedy ok)"
}

# missing_imports_remedy STATE: how to install what the notebooks import, given the state
# of the project's dependencies at the last bootstrap (ok or failed).
missing_imports_remedy() {
	if [[ $1 == failed ]]; then
		printf '%s' "the project's dependencies failed to install at the last bootstrap; fix" \
			" ${DEPENDENCY_FILES[*]-them}, then run: scripts/app.sh bootstrap (it shows the installer's reason)"
	elif grep -q '^\[project\.optional-dependencies\]' "$PROJECT_ROOT/pyproject.toml" 2>/dev/null; then
		printf '%s' "add them to pyproject.toml's dependencies (optional ones: set APP_EXTRAS in" \
			" scripts/app.local.sh), then run: scripts/app.sh bootstrap"
	else
		printf '%s' "add them to requirements.txt (or pyproject.toml), then run: scripts/app.sh bootstrap"
	fi
}

# After a bootstrap, a running server and its kernels still run with the packages they
# started with (and the server it was, after a switch): say so, and how to renew them.
report_what_still_runs_the_old_venv() {
	local i count=0
	# No PID file, no server of ours: no process table to read.
	[[ -f $PID_FILE || -f $LEGACY_PID_FILE ]] || return 0
	scan_project
	[[ -n $TRACKED_PID ]] || return 0
	find_running_old_server
	if [[ -n $RUNNING_OLD_SERVER ]]; then
		warn "the running server (PID $TRACKED_PID) is still $RUNNING_OLD_SERVER; switch it to $SERVER with: scripts/app.sh restart"
		return 0
	fi
	for ((i = 0; i < ${#PS_PIDS[@]}; i++)); do
		[[ ${PS_PPIDS[i]} == "$TRACKED_PID" ]] && is_project_kernel "${PS_ARGS[i]}" && count=$((count + 1))
	done
	((count > 0)) || return 0
	warn "$count running kernel(s) still have the packages they started with: restart them" \
		"(JupyterLab: Kernel > Restart Kernel), or everything with: scripts/app.sh restart"
}
