---@meta exec
-- LuaLS annotations for lua-exec (require("exec")). Installed by the rock;
-- point your editor's `workspace.library` at this folder.

---@class exec
---@field registry exec.registry
---@field channel channellib
---@field time timelib
---@field version string
local exec = {}

---@class exec.registry
local registry = {}

---The third value of a failed wait, signal, resize, write_stdin, close_stdin or stream read
---(README, "Error codes"): stable, unlike the message. An errno name ("EPIPE", "ENOMEM", ...)
---for a failed system call, "os" for an uncommon one.
---@alias exec.ErrorCode "not_started"|"closed"|"finished"|"handed_over"|"timeout"|"dropped"|"unsupported"|"invalid"|"failed"|"os"|string

---Configuration of a resource. Kinds "exec.native", "exec.ssh" and "exec.docker" make process
---executors; the connection fields are for "exec.ssh" only (its work dir and env apply on the
---remote host), the container fields for "exec.docker" only (work dir and env apply in the container).
---@class exec.ResourceConfig
---@field kind string
---@field default_work_dir? string
---@field default_env? table<string, string|number>
---@field command_whitelist? string[] exact commands; whitelisted programs are resolved with the resource's own PATH
---@field allowed_env? string[] the only variable names a caller's `env` may set
---@field work_dir_within? string a caller's `work_dir` must resolve (symlinks followed) inside this directory, and path redirections open beneath it
---@field max_processes? integer
---@field queue? boolean start() beyond max_processes waits for a slot (first come, first served) instead of raising
---@field inherit_env? boolean default_env and a caller's env overlay our environment instead of replacing it (on a resource with command_whitelist or work_dir_within, also what lets a caller ask for inherit_env)
---@field allow_inherit? boolean on a resource with command_whitelist or work_dir_within: callers may set stdin/stdout/stderr = "inherit" (refused otherwise)
---@field host? string exec.ssh: required; exec.docker: the engine's address (docker --host, podman --url)
---@field port? integer
---@field user? string exec.ssh: the login name; exec.docker: the user in the container (name, uid or uid:gid)
---@field identity_file? string
---@field known_hosts_file? string also turns on StrictHostKeyChecking
---@field ssh_config_file? string `ssh -F` (e.g. "/dev/null" to ignore ~/.ssh/config)
---@field ssh_options? table<string, string|number|boolean> `-o Key=Value`
---@field multiplex? boolean one shared connection per resource (default true)
---@field ssh_command? string the ssh program (default "ssh")
---@field image? string exec.docker: a fresh container of this image per process (required unless `container` is set)
---@field container? string exec.docker: run every process in this existing container (`exec`) instead
---@field engine? string "docker", "podman" or an absolute path; default: the first of docker, podman that answers
---@field engine_args? string[] the client's global arguments (e.g. podman's --root, --runroot, --storage-driver)
---@field engine_env? table<string, string|number> the client's environment: ours overlaid with these (e.g. CONTAINERS_CONF, DOCKER_CONFIG)
---@field network_mode? string e.g. "none"
---@field volumes? string[] "host:container" or "host:container:ro" bind mounts (absolute paths)
---@field memory_limit? integer|string bytes, or "256m" (units b, k, m, g)
---@field cpu_quota? integer microseconds of CPU per 100 ms period
---@field pids_limit? integer
---@field read_only_rootfs? boolean
---@field no_new_privileges? boolean
---@field cap_drop? string[]
---@field cap_add? string[]
---@field tmpfs? table<string, string>|string[] { ["/tmp"] = "size=64m" }, or { "/tmp:size=64m" }
---@field auto_remove? boolean remove each container when it ends (default true)
---@field rlimits? exec.Rlimits exec.native: limits of each process; a caller may only lower them
---@field uid? integer|string exec.native: the user of each process (a caller may repeat it or leave it out)
---@field gid? integer|string exec.native: its group (default with uid: the user's primary group)
---@field groups? (integer|string)[] exec.native: its supplementary groups (default with uid: none)
---@field umask? integer|string exec.native: its umask (a caller may only add bits); "077" or 63
---@field nice? integer exec.native: its niceness, -20 to 19 (a caller may only raise it)
---@field kill_on_parent_death? boolean exec.native: each process gets SIGKILL when the thread that started it dies (a caller cannot turn it off)

---Resource limits set in the child, soft and hard alike (cpu: hard one second more, so that
---SIGXCPU comes first). Sizes in bytes, or a string with a unit of 1024 ("256m", "1g").
---@class exec.Rlimits
---@field cpu? integer seconds of CPU time
---@field as? integer|string address space
---@field fsize? integer|string largest file written (SIGXFSZ beyond)
---@field nofile? integer open descriptors
---@field nproc? integer processes of the child's user (does not bind root: give a uid too)
---@field core? integer|string core dump size
---@field stack? integer|string stack size

---Define a resource. `config.kind` is required.
---@param id string `namespace:name`
---@param config exec.ResourceConfig
---@return true
function registry.define(id, config) end

---@class exec.LoadOptions
---@field trust? boolean allow options that run local programs (ssh_command, ssh_config_file, ssh_options.ProxyCommand, engine, engine_args, engine_env, ...) or hand host files and privileges to containers (volumes, cap_add)

---Define every resource a file declares (ids mapped to configurations, in JSON when the
---name ends in .json, Lua table syntax otherwise: data, evaluated with no access to anything and
---an instruction budget). All or nothing; raises on any error.
---@param path string
---@param options? exec.LoadOptions
---@return string[] ids the ids defined, sorted
function registry.load(path, options) end

---The kind of a defined resource, or nil.
---@param id string
---@return string|nil
function registry.kind(id) end

---A process executor from the registry. Raises for an unknown id, another kind, or a failed acquisition.
---@param id string e.g. "process:native"
---@return exec.Executor
function exec.get(id) end

---Run a command to completion on process:native.
---@param command string|string[]
---@param options? exec.RunOptions
---@return exec.RunResult
function exec.run(command, options) end

---Signal names without "SIG" mapped to their numbers here (a copy: changing it changes nothing).
---@type table<string, integer>
exec.signals = {}

---A new table with the current environment (name -> value), e.g. to merge into `env`.
---@return table<string, string>
function exec.environ() end

---The absolute path `name` would run as (the lookup a start makes: each entry of `path`,
---default our PATH; a name with a "/" as it is), or nil, message, code ("ENOENT": not
---found, "EACCES": not executable).
---@param name string
---@param path? string a PATH-style list
---@return string|nil path
---@return string|nil message
---@return exec.ErrorCode|nil code
function exec.which(name, path) end

---Quote `s` for /bin/sh.
---@param s string|number
---@return string
function exec.quote(s) end

---Schedule `fn(...)` as a task (also coroutine.spawn).
---@param fn fun(...)
---@return thread
function exec.spawn(fn, ...) end

---Schedule `fn(...)` as a task (the same function as exec.spawn; installed
---by require("exec") unless something else defined it).
---@param fn fun(...)
---@return thread
function coroutine.spawn(fn, ...) end

---Run the event loop until every task has finished. true, or nil and a
---message naming every task that ended with an error since the last call.
---@return true|nil ok
---@return string|nil failures
function exec.wait_tasks() end

---For a host event loop: the descriptor to watch for readability (then call exec.step()).
---From then on, work made outside exec.step() (a task spawned or woken, a timer added) makes
---it readable too.
---@return integer fd
function exec.pollfd() end

---For a host event loop: run what is ready without blocking; the seconds until lua-exec must
---run again even if pollfd() stays quiet (0: at once; nil: only when pollfd() is readable).
---Raises inside a task.
---@return number|nil seconds
function exec.step() end

---@class exec.ExecOptions
---@field work_dir? string
---@field env? table<string, string|number>
---@field stdin? "pipe"|"socket"|"null"|"inherit"|file*|exec.PathRedirect|exec.Stream a file, a path, or another process's output stream (a pipeline)
---@field stdout? "pipe"|"socket"|"null"|"inherit"|file*|exec.PathRedirect
---@field stderr? "pipe"|"socket"|"null"|"inherit"|"stdout"|file*|exec.PathRedirect
---@field pty? boolean|{ rows?: integer, cols?: integer } stdin, stdout and stderr are a new pseudo-terminal (default 24 x 80), the child's controlling terminal
---@field detach? boolean a session of its own, never ended by the library (close, collection, state end, os.exit); still reaped
---@field process_group? boolean Lead a new process group; signals, close() and timeouts reach the whole group until it is empty. Default: true for a string command and with `timeout` (unless stdin is an inherited terminal), else false.
---@field timeout? string|number SIGTERM to all of the command when it passes, SIGKILL 1 s later.
---@field inherit_env? boolean the child gets our environment, overlaid by default_env, overlaid by env (default: the resource's inherit_env, else false: env alone replaces it)
---@field buffer_limit? integer Bytes of unread output taken in per process while the program waits on something else of it (default 16 MiB); past it the oldest are dropped and the next read says so.
---@field rlimits? exec.Rlimits resource limits set in the child before exec (the fork path)
---@field uid? integer|string the child's user (needs privilege); without gid, the user's primary group; without groups, none
---@field gid? integer|string the child's group
---@field groups? (integer|string)[] the child's supplementary groups
---@field umask? integer|string the child's umask: 63 or "077"
---@field nice? integer the child's niceness, -20 to 19
---@field kill_on_parent_death? boolean SIGKILL to the child when the thread that started it dies, even by SIGKILL (PR_SET_PDEATHSIG); not with detach
---@field argv0? string the name the program sees as argv[0]; refused with a command_whitelist
---@field fds? table<integer, file*|exec.Stream|exec.FdPath> descriptors 3 and up handed to the child at those numbers (closed here once it started)

---A file opened for one of `fds` when the child starts: for reading, or for writing with
---`write` (created, truncated) or `append`. The path rules of exec.PathRedirect apply.
---@class exec.FdPath
---@field path string
---@field write? boolean
---@field append? boolean

---A file the library opens when the child starts (relative to our current directory; on a
---restricted executor, beneath its work_dir_within, relative to the process's work_dir). The
---open never blocks (a FIFO without a reader fails the start).
---@class exec.PathRedirect
---@field path string
---@field append? boolean stdout/stderr: append instead of truncating

---@class exec.RunOptions: exec.ExecOptions
---@field input? string written to stdin, which must then be a pipe (not with another stdin)
---@field check? boolean raise an exec.RunError when the command exits non-zero
---@field max_output? integer bytes kept of stdout and of stderr, each; the rest is read and thrown away (the result says truncated)

---Raised by run with `check = true`: tostring() gives the message; the
---result's fields come with it.
---@class exec.RunError: exec.RunResult
---@field message string "<fn>: '<command>' exited with N: <last lines of stderr>"
---@field command string

---@class exec.RunResult
---@field code integer
---@field stdout string
---@field stderr string
---@field timed_out boolean
---@field truncated? boolean with max_output: an output had more than it (thrown away)

---@class exec.Executor
local Executor = {}

---A new, unstarted process handle. A string runs through /bin/sh -c; a list runs directly.
---@param command string|string[]
---@param options? exec.ExecOptions
---@return exec.Process
function Executor:exec(command, options) end

---Start, feed input, collect both streams, wait.
---@param command string|string[]
---@param options? exec.RunOptions
---@return exec.RunResult
function Executor:run(command, options) end

---Always true; later exec calls raise.
---@return true
function Executor:release() end

---The resource id.
---@return string
function Executor:id() end

---@class exec.Process
local Process = {}

---Start the process. Raises if already started, closed, or the spawn fails.
function Process:start() end

---Wait for the exit code (128 + N for signal N). Never raises. With `d`, at most that long.
---@param d? string|number
---@return integer|nil code
---@return string|nil err
---@return exec.ErrorCode|nil code
function Process:wait(d) end

---Where the process is: "created", "running", "exited" with the code,
---"signaled" with the signal number, "closed" (told to stop by close() and
---not ended yet) or "unknown" (its outcome cannot be known).
---@return "created"|"running"|"exited"|"signaled"|"closed"|"unknown" state
---@return integer|nil detail
function Process:status() end

---Change the window size of the process's terminal (pty = true).
---@param rows integer
---@param cols integer
---@return true|nil ok
---@return string|nil err
---@return exec.ErrorCode|nil code
function Process:resize(rows, cols) end

---Send a signal.
---@param signal_number integer|string a number, or a name: "TERM", "SIGTERM", "term"
---@return true|nil ok
---@return string|nil err
---@return exec.ErrorCode|nil code
function Process:signal(signal_number) end

---SIGTERM (SIGKILL with force, or the signal given by number or name) a
---running child, SIGKILL after the grace period; always true.
---@param force_stop? boolean|integer|string
---@return true
function Process:close(force_stop) end

---The pid, or nil before start.
---@return integer|nil
function Process:pid() end

---True once the timeout option ended the child.
---@return boolean
function Process:timed_out() end

---The stdout stream, the same object on every call. May be taken before start():
---reads then wait for the start.
---@return exec.Stream
function Process:stdout_stream() end

---The stderr stream, the same object on every call. May be taken before start():
---reads then wait for the start.
---@return exec.Stream
function Process:stderr_stream() end

---Queue data for the child's stdin.
---@param data string|number
---@return true|nil ok
---@return string|nil err
---@return exec.ErrorCode|nil code
function Process:write_stdin(data) end

---End-of-file on stdin once queued data is delivered.
---@return true|nil ok
---@return string|nil err
---@return exec.ErrorCode|nil code
function Process:close_stdin() end

---@class exec.Stream
local Stream = {}

---The next chunk (at most n bytes, 64 KiB by default; n = 0 means no n, as in Wippy's stream module),
---a line ("l"/"L"), or everything ("a").
---nil, nil at the end; nil, message, code on error; nil, "timeout", "timeout" when `timeout`
---passed before anything complete arrived (nothing read is lost). Before the
---process started it waits for the start (nil, message if nothing could start it).
---@param n? integer|"l"|"L"|"a"
---@param timeout? string|number
---@return string|nil data
---@return string|nil err
---@return exec.ErrorCode|nil code
function Stream:read(n, timeout) end

---Iterate lines without their newline ("l", the default), with it ("L"),
---or chunks of at most n bytes.
---@param fmt? "l"|"L"|integer
---@return fun(): string|nil
function Stream:lines(fmt) end

---A case for channel.select: when chosen, `value` is what read(fmt) returned and `ok` is false at the end (`err` and `code` on an error).
---@param fmt? integer|"l"|"L"|"a"
---@return table
function Stream:case_read(fmt) end

---@return true ok
---@return nil
function Stream:close() end

---A scanner of the stream's tokens, as in Wippy's stream module (after Go's bufio.Scanner):
---"lines" (default; without "\n" and a "\r" before it), "words" (split on Unicode white
---space, none empty), "bytes", or "runes" (UTF-8 characters; an invalid byte is "\u{FFFD}").
---@param split? "lines"|"words"|"bytes"|"runes"
---@return exec.Scanner
function Stream:scanner(split) end

---@class exec.Scanner
local Scanner = {}

---Advance to the next token: true while there is one; false at the end; false, message
---on an error (then for good). Waits like stream:read.
---@return boolean ok
---@return string|nil err
function Scanner:scan() end

---The token the last scan() found ("" before the first and after the last).
---@return string
function Scanner:text() end

---The error that ended the scan, or nil (also at a normal end).
---@return string|nil
function Scanner:err() end

---@class channellib
channel = {}

---@param size? integer
---@return exec.Channel
function channel.new(size) end

---@param cases table
---@return { channel?: exec.Channel, value?: any, ok?: boolean, default?: boolean }
function channel.select(cases) end

---@class exec.Channel
local Channel = {}

---@param v any
---@return true
function Channel:send(v) end

---@return any value
---@return boolean ok
function Channel:receive() end

---@return true
function Channel:close() end

---@return table
function Channel:case_receive() end

---@param v any
---@return table
function Channel:case_send(v) end

---@return integer
function Channel:len() end

---@return boolean
function Channel:is_closed() end

---@class timelib
local timelib = {}

---@param d string|number
function timelib.sleep(d) end

---@param d string|number
---@return exec.Channel
function timelib.after(d) end

---@param d string|number
---@return number seconds
function timelib.parse_duration(d) end

---@return number seconds
function timelib.now() end

return exec
