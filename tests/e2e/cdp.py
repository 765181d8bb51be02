"""A headless Chromium driven over the DevTools protocol on a pipe (fd 3: commands
in, fd 4: answers out, each message JSON and a NUL): no port, no extra package, and the
browser dies with the test. For the dashboard's e2e tests; see ../shared notes."""
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

CHROMIUM = os.environ.get('PILOT_CHROMIUM', '/usr/lib/chromium/chromium')


class Error(Exception):
    pass


class Browser:
    def __init__(self, root, width=1280, height=800):
        """root gets chromium.log; the profile, HOME and TMPDIR go to a short directory
        of their own, as the browser's socket paths must stay under 108 bytes."""
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.state = tempfile.mkdtemp(prefix='pilot-cr-', dir='/tmp')
        for d in ('profile', 'home', 'tmp'):
            os.makedirs(os.path.join(self.state, d))
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()

        def wire():
            # Out of the way first, so that placing one does not clobber the other.
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 100)
            b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 100)
            os.dup2(a, 3)
            os.dup2(b, 4)

        st = self.state
        env = dict(os.environ, HOME=os.path.join(st, 'home'), TMPDIR=os.path.join(st, 'tmp'),
                   XDG_CONFIG_HOME=os.path.join(st, 'home', '.config'),
                   XDG_CACHE_HOME=os.path.join(st, 'home', '.cache'))
        args = [CHROMIUM, '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
                '--no-default-browser-check', '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--disable-extensions', '--mute-audio', '--hide-scrollbars',
                f'--window-size={width},{height}', '--user-data-dir=' + os.path.join(st, 'profile'),
                '--remote-debugging-pipe', 'about:blank']
        self.log = open(os.path.join(root, 'chromium.log'), 'wb')
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
                                     preexec_fn=wire, pass_fds=(3, 4), start_new_session=True)
        os.close(cmd_r)
        os.close(res_w)
        self.buf = b''
        self.next_id = 0
        self.events = []
        self.session = None
        try:
            self.call('Browser.getVersion', timeout=20)
        except Error:
            self.close()
            raise

    # ---- the protocol ----

    def _read_message(self, deadline):
        while b'\0' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Error('no answer from the browser in time')
            r, _, _ = select.select([self.res_r], [], [], left)
            if not r:
                continue
            chunk = os.read(self.res_r, 1 << 20)
            if not chunk:
                raise Error('the browser exited; see ' + os.path.join(self.root, 'chromium.log'))
            self.buf += chunk
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def call(self, method, params=None, timeout=15, session=True):
        self.next_id += 1
        m = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session and self.session:
            m['sessionId'] = self.session
        os.write(self.cmd_w, json.dumps(m).encode() + b'\0')
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_message(deadline)
            if msg.get('id') == self.next_id:
                if 'error' in msg:
                    raise Error(f'{method}: {msg["error"].get("message")}')
                return msg.get('result', {})
            if 'method' in msg:
                self.events.append(msg)

    def pump(self, seconds=0.0):
        """Reads the events that arrived (waiting up to seconds for more)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                msg = self._read_message(deadline)
                if 'method' in msg:
                    self.events.append(msg)
        except Error as e:
            if 'in time' not in str(e):
                raise

    # ---- a page ----

    def open(self, url):
        target = self.call('Target.createTarget', {'url': 'about:blank'}, session=False)['targetId']
        self.session = self.call('Target.attachToTarget', {'targetId': target, 'flatten': True},
                                 session=False)['sessionId']
        for domain in ('Page', 'Runtime', 'Log'):
            self.call(domain + '.enable')
        self.navigate(url)

    def navigate(self, url):
        self.call('Page.navigate', {'url': url})

    def eval(self, expr):
        r = self.call('Runtime.evaluate', {'expression': expr, 'returnByValue': True, 'awaitPromise': True})
        if 'exceptionDetails' in r:
            raise Error(f'{expr}: {r["exceptionDetails"].get("text")}')
        return r.get('result', {}).get('value')

    def wait_for(self, expr, timeout=10.0):
        """Polls expr until it is truthy; its value, or None at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                v = self.eval(expr)
            except Error:
                v = None
            if v:
                return v
            time.sleep(0.05)
        return None

    def click(self, selector):
        rect = self.eval(f'(() => {{ const e = document.querySelector({json.dumps(selector)}); '
                         "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                         'return [r.x + r.width / 2, r.y + r.height / 2]; })()')
        x, y = rect
        for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
            self.call('Input.dispatchMouseEvent', {'type': kind, 'x': x, 'y': y, 'button': 'left', 'clickCount': 1})

    def screenshot(self, path):
        data = self.call('Page.captureScreenshot', {'format': 'png'})['data']
        with open(path, 'wb') as f:
            f.write(base64.b64decode(data))

    def errors(self):
        """The page's uncaught exceptions and console errors so far."""
        self.pump()
        out = []
        for e in self.events:
            p = e.get('params', {})
            if e['method'] == 'Runtime.exceptionThrown':
                d = p.get('exceptionDetails', {})
                out.append('exception: ' + str(d.get('exception', {}).get('description') or d.get('text')))
            elif e['method'] == 'Runtime.consoleAPICalled' and p.get('type') == 'error':
                out.append('console: ' + ' '.join(str(a.get('value', a.get('description'))) for a in p.get('args', [])))
            elif e['method'] == 'Log.entryAdded' and p.get('entry', {}).get('level') == 'error':
                out.append('log: ' + p['entry'].get('text', '') + ' ' + p['entry'].get('url', ''))
        return out

    def log_tail(self, n=5):
        """The last lines of the browser's own log, for a failure's message."""
        try:
            with open(os.path.join(self.root, 'chromium.log'), errors='replace') as f:
                return ' | '.join(f.read().splitlines()[-n:])
        except OSError:
            return ''

    def close(self):
        try:
            self.call('Browser.close', timeout=5, session=False)
        except (Error, OSError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=2)
                    break
                except subprocess.TimeoutExpired:
                    pass
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.state, ignore_errors=True)
