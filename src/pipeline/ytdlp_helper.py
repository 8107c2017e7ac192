"""xtract's warm yt-dlp: imports yt_dlp once, warms it up, then forks a
child per download.

Started by the daemon (src/pipeline/warm.rs) with the Python of the yt-dlp
installation:

    python3 ytdlp_helper.py SOCKET

It prints one JSON line on stdout when it is ready, then serves
connections on the Unix socket SOCKET. A connection carries one download:
the daemon sends one JSON line, {"argv": [...], "cwd": "..."}, with the
arguments the yt-dlp command line would get; a child forked for it runs
yt-dlp's own command-line entry point with those arguments and answers with
JSON lines, one object each:

    {"pid": N}            first: the child leads process group N
    {"gate": "waiting"}   with "gate": true in the request: yt-dlp is about
                          to send its first request to the site; the child
                          waits for the daemon's {"go": true} line (the
                          platform's turn), or exits if the connection
                          closes
    {"out": "..."}        a line yt-dlp wrote on stdout
    {"err": "..."}        a line yt-dlp wrote on stderr (warnings, errors)
    {"progress": [done, total]}   bytes downloaded, total or null
    {"info": {...}}       the video's facts, before its download
    {"file": "..."}       the final file
    {"exit": N}           last: the exit code the command line would have

The helper runs with the environment the daemon gives every program it
starts (an allow-list: src/pipeline/child_env.rs), and its children inherit
it with their own mark added: none of the daemon's secrets is in it.

The child dies with the helper, and the helper with the daemon; the daemon
kills a child's group to cancel it. When its stdin closes the helper stops
accepting and exits once its children are done; on SIGTERM it kills them.
"""

import ctypes
import gc
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time

PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL(None, use_errno=True)
HELPER_PID = os.getpid()
children = set()


def die_with_parent(parent):
    """SIGKILL when our parent dies; if it already has, go now."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def reap(*_):
    while children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)


def kill_children(*_):
    """Kills the children's groups, reaps the children (their CPU time is
    then the helper's, and so the daemon's) and exits."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in list(children):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    os._exit(0)


class Channel:
    """JSON lines to the daemon, one whole line per write, from any thread
    (yt-dlp may call hooks from fragment threads)."""

    def __init__(self, conn):
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, **message):
        data = (json.dumps(message, ensure_ascii=False, default=str) + '\n').encode('utf-8', 'replace')
        with self.lock:
            try:
                self.conn.sendall(data)
            except OSError:
                # The daemon is gone or gave up on us: nobody to report to.
                os._exit(1)


class Lines:
    """A text stream that sends each complete line as {stream: line}, so
    yt-dlp writes exactly what its command line would."""

    encoding = 'utf-8'

    def __init__(self, channel, stream):
        self.channel = channel
        self.stream = stream
        self.pending = ''

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split('\n')
        for line in lines:
            self.channel.send(**{self.stream: line.rstrip('\r')})
        return len(text)

    def flush(self):
        pass

    def close(self):
        if self.pending:
            self.channel.send(**{self.stream: self.pending})
            self.pending = ''

    def isatty(self):
        return False

    def writable(self):
        return True


def gate_on(channel, conn):
    """Holds the caller until the daemon says go: the platform's turn is
    taken for yt-dlp's first request itself, not for the moment the child
    was forked (what comes between, parsing options and setting up, varies
    with the machine's load, and would crowd two jobs' first requests)."""

    def wait():
        channel.send(gate='waiting')
        answer = b''
        while not answer.endswith(b'\n'):
            data = conn.recv(4096)
            if not data:
                # The daemon gave up the run (cancelled, or the platform was
                # paused meanwhile): no request goes out.
                os._exit(1)
            answer += data
    return wait


def reporting_ydl(channel, gate=None):
    """YoutubeDL that also reports progress, the video's facts and the final
    file on the channel, and holds its first request at `gate`."""
    from yt_dlp import YoutubeDL
    from yt_dlp.postprocessor.common import PostProcessor

    class Report(PostProcessor):
        def __init__(self, downloader, what):
            super().__init__(downloader)
            self.what = what

        def run(self, info):
            if self.what == 'info':
                channel.send(info={k: info.get(k) for k in (
                    'id', 'title', 'duration', 'uploader', 'extractor_key',
                    'thumbnail', 'track', 'artists')})
            else:
                channel.send(file=info.get('filepath'))
            return [], info

    def progress(d):
        # One a block: yt-dlp sizes its blocks to about a second of the
        # transfer rate (up to 4 MB), so these stay few.
        if d.get('status') == 'downloading':
            total = d.get('total_bytes') or d.get('total_bytes_estimate')
            channel.send(progress=[d.get('downloaded_bytes') or 0, total])

    pending_gate = [gate] if gate else []

    class ReportingYoutubeDL(YoutubeDL):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_progress_hook(progress)
            self.add_post_processor(Report(self, 'info'), when='video')
            self.add_post_processor(Report(self, 'file'), when='after_move')

        def urlopen(self, req):
            # Every request yt-dlp makes (extractors and downloaders) goes
            # through here; the first one waits for the platform's turn.
            if pending_gate:
                pending_gate.pop()()
            return super().urlopen(req)

    return ReportingYoutubeDL


def run_cli(argv):
    """yt-dlp's command line, in this process; returns its exit code."""
    import yt_dlp
    try:
        yt_dlp.main(argv)
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        import traceback
        traceback.print_exc()
        return 1
    return 0


def child(conn, listener, request):
    os.setpgid(0, 0)
    die_with_parent(HELPER_PID)
    # The daemon's mark for this download (process_tree.rs): ffmpeg, deno
    # and anything else yt-dlp starts inherit it, so the daemon (or the next
    # one, after a kill -9) can end every process of the job.
    if request.get('mark'):
        os.environ['XTRACT_PROCESS_MARK'] = request['mark']
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    listener.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # yt-dlp writes through sys.stdout and sys.stderr (below); whatever
    # writes to the descriptors themselves ends up in the daemon's log.
    os.dup2(2, 1)
    channel = Channel(conn)
    channel.send(pid=os.getpid())
    os.chdir(request['cwd'])
    out, err = Lines(channel, 'out'), Lines(channel, 'err')
    sys.stdout, sys.stderr = out, err
    import yt_dlp
    gate = gate_on(channel, conn) if request.get('gate') else None
    yt_dlp.YoutubeDL = reporting_ydl(channel, gate)
    code = run_cli(request['argv'])
    out.close()
    err.close()
    channel.send(exit=code)
    os._exit(code)


def serve(listener):
    stdin = sys.stdin.fileno()
    open_ = True
    import select
    while open_ or children:
        waiting = [listener, stdin] if open_ else []
        ready, _, _ = select.select(waiting, [], [], None if open_ else 1.0)
        if stdin in ready and not os.read(stdin, 4096):
            # The daemon let go of us (an upgrade): finish what runs.
            open_ = False
            listener.close()
            continue
        if listener in ready:
            conn, _ = listener.accept()
            try:
                conn.settimeout(10)
                request = json.loads(conn.makefile('rb').readline())
                conn.settimeout(None)
            except (OSError, ValueError):
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                try:
                    child(conn, listener, request)
                finally:
                    os._exit(1)
            children.add(pid)
            conn.close()
        reap()


def warm_up():
    """Runs one real download from a local HTTP server, so that what the first
    download in a process sets up (extractor regexes, the generic extractor,
    the network stack, format selection) is done here, once, and inherited
    by every child."""
    import http.server

    class Media(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'\0' * 4096
            self.send_response(200)
            self.send_header('Content-Type', 'video/mp4')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Media)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    saved = sys.stdout, sys.stderr
    try:
        with tempfile.TemporaryDirectory(prefix='xtract-warm-up-') as tmp:
            sys.stdout = sys.stderr = Lines(Discard(), 'out')
            import yt_dlp
            yt_dlp.YoutubeDL = reporting_ydl(Discard())
            code = run_cli([
                '--ignore-config', '--no-quiet', '--no-playlist', '--no-cache-dir', '--no-mtime',
                '--no-progress', '--socket-timeout', '10', '-f', 'ba[ext=m4a]/ba/b',
                '-o', f'{tmp}/source.%(ext)s', '--match-filters', '!is_live & duration <=? 10800',
                '--max-filesize', '1000000', '--', f'http://127.0.0.1:{server.server_port}/warm-up.mp4'])
    finally:
        sys.stdout, sys.stderr = saved
        server.shutdown()
        server.server_close()
        thread.join()
    return code


class Discard:
    def send(self, **message):
        pass


def prepare_tls():
    """Builds, once in the helper, the TLS contexts yt-dlp builds for every
    download: loading the CA certificates costs ~25 ms of CPU each time.
    Each child takes a prepared context once per kind; any further one is
    built as yt-dlp would. The prepared ones are fresh (never used by the
    warm-up), so a child gets exactly what it would have built itself."""
    import yt_dlp.networking.common as common
    build = common.make_ssl_context
    kinds = []

    def recording(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in kinds:
            kinds.append(key)
        return build(*args, **kwargs)

    prepared = {}

    def prepared_or_built(*args, **kwargs):
        context = prepared.pop((args, tuple(sorted(kwargs.items()))), None)
        return context if context is not None else build(*args, **kwargs)

    def prepare():
        for args, kwargs in kinds:
            prepared[(args, kwargs)] = build(*args, **dict(kwargs))
        common.make_ssl_context = prepared_or_built

    common.make_ssl_context = recording
    return prepare


def roomier_regex_caches():
    """Python keeps 512 compiled regular expressions and 100 strptime
    formats; yt-dlp uses more (its date parsing alone tries ~250 formats),
    so each child would compile them again. Room for all of them, filled by
    the warm-up."""
    import _strptime
    import re
    re._MAXCACHE = max(re._MAXCACHE, 8192)
    _strptime._CACHE_MAX_SIZE = max(_strptime._CACHE_MAX_SIZE, 2048)
    from yt_dlp.utils import unified_strdate, unified_timestamp
    unified_timestamp('Sat, 28 Nov 2026 00:51:03 GMT')
    unified_strdate('20261128')


def unchanged(function, digest):
    """Whether yt-dlp's `function` is still the code a replacement below was
    written from: a replacement applies to that code only."""
    import hashlib
    import inspect
    source = inspect.getsource(function).encode()
    return hashlib.sha256(source).hexdigest()[:16] == digest


def linear_extractor_list():
    """Every YoutubeDL builds its list of ~1,800 extractors with
    orderedSet_from_options, which compares each name with every other
    (~25 ms of CPU per download). The same functions with the membership
    tests done on sets: same result, linear time."""
    import re
    import sys
    from yt_dlp.utils import _utils
    if not (unchanged(_utils.orderedSet, '312bc612dd21aa1f')
            and unchanged(_utils.orderedSet_from_options, 'be761acdbad38204')):
        raise RuntimeError('yt-dlp changed these functions')

    def ordered_set(iterable, *, lazy=False):
        def _iter():
            seen, seen_unhashable = set(), []
            for x in iterable:
                try:
                    if x in seen:
                        continue
                    seen.add(x)
                except TypeError:
                    if x in seen_unhashable:
                        continue
                    seen_unhashable.append(x)
                yield x

        return _iter() if lazy else list(_iter())

    def ordered_set_from_options(options, alias_dict, *, use_regex=False, start=None):
        assert 'all' in alias_dict, '"all" alias is required'
        requested = list(start or [])
        all_names = set(alias_dict['all'])
        for val in options:
            discard = val.startswith('-')
            if discard:
                val = val[1:]

            if val in alias_dict:
                val = alias_dict[val] if not discard else [
                    i[1:] if i.startswith('-') else f'-{i}' for i in alias_dict[val]]
                requested = ordered_set_from_options(val, alias_dict, start=requested)
                continue

            current = (filter(re.compile(val, re.I).fullmatch, alias_dict['all']) if use_regex
                       else [val] if val in all_names else None)
            if current is None:
                raise ValueError(val)

            if discard:
                for item in current:
                    while item in requested:
                        requested.remove(item)
            else:
                requested.extend(current)

        return ordered_set(requested)

    for module in (_utils, sys.modules['yt_dlp.YoutubeDL']):
        module.orderedSet = ordered_set
        module.orderedSet_from_options = ordered_set_from_options


def main():
    socket_path = sys.argv[1]
    die_with_parent(os.getppid())
    started = time.process_time()
    import yt_dlp
    imported = time.process_time()
    from yt_dlp.version import __version__
    speedups = []
    try:
        linear_extractor_list()
        speedups.append('extractor_list')
    except Exception:
        pass
    try:
        roomier_regex_caches()
        speedups.append('regex_caches')
    except Exception:
        pass
    try:
        prepare = prepare_tls()
    except Exception:
        prepare = None
    code = warm_up()
    if prepare:
        try:
            prepare()
            speedups.append('tls')
        except Exception:
            pass
    warmed = time.process_time()
    # What exists now is shared with every child: keep the collector from
    # touching (and so copying) it in each of them.
    gc.freeze()
    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, kill_children)
    signal.signal(signal.SIGINT, kill_children)
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    listener.bind(socket_path)
    os.umask(old)
    listener.listen(64)
    print(json.dumps({
        'ready': True,
        'version': __version__,
        'module': os.path.dirname(yt_dlp.__file__),
        'python': sys.version.split()[0],
        'import_cpu': round(imported - started, 3),
        'warm_up_cpu': round(warmed - imported, 3),
        'warm_up_exit': code,
        'speedups': speedups,
    }), flush=True)
    try:
        serve(listener)
    finally:
        kill_children()


if __name__ == '__main__':
    main()
