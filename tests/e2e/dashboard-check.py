"""The dashboard in a real browser, against a real server with real runs (set up by
t0720-dashboard.sh). Prints one line per check, "PASS<TAB>what" or
"FAIL<TAB>what<TAB>why", for the shell to count.

    dashboard-check.py URL TOKEN OUTDIR PILOT PROJECT_DIR METRICS_RUN METRICS_RUN2 XSS_RUN LONG_RUN TRIGGER
                       PIPELINE ARRAY"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402


def main():
    url, token, out, pilot, project, metrics_run, metrics_run2, xss_run, long_run, trigger, pipe, arr = sys.argv[1:13]

    def check(what, ok, why=''):
        print(('PASS\t' + what) if ok else ('FAIL\t' + what + '\t' + str(why).replace('\n', ' ')), flush=True)

    try:
        b = cdp.Browser(os.path.join(out, 'browser'))
    except cdp.Error as e:
        log = os.path.join(out, 'browser', 'chromium.log')
        tail = open(log, errors='replace').read().splitlines()[-5:] if os.path.exists(log) else []
        check('the browser starts', False, f'{e}: ' + ' | '.join(tail))
        return
    try:
        b.open(url + '/#token=' + token)
        n = b.wait_for("document.querySelectorAll('#runs tbody tr').length >= 4")
        check('the runs list shows the runs', n, b.eval("document.querySelector('#main').innerText"))
        check('the token left the address', b.eval('location.href') == url + '/#/runs', b.eval('location.href'))
        check('and is kept in the tab', b.eval("sessionStorage.getItem('pilot-token')") == token)
        for r in (xss_run, long_run):
            check(f'run {r} is listed', b.eval(f"!!document.querySelector('tr[data-run=\"{r}\"]')"))
        b.screenshot(os.path.join(out, 'runs.png'))

        # A run submitted now appears without a reload (the event stream).
        new = subprocess.run([pilot, 'submit', project], capture_output=True, text=True, check=True).stdout.strip()
        t0 = time.monotonic()
        seen = b.wait_for(f"!!document.querySelector('tr[data-run=\"{new}\"]')", timeout=10)
        check(f'a run submitted later shows up live ({time.monotonic() - t0:.2f} s)', seen)

        # A run's metrics as a chart: a line of 5 points per metric.
        b.navigate(url + '/#/runs/' + metrics_run)
        n = b.wait_for("document.querySelectorAll('#metrics [data-key=\"loss\"] circle').length === 5 && "
                       "document.querySelectorAll('#metrics [data-key=\"acc\"] circle').length === 5")
        check('the metrics chart has the points of each metric', n,
              b.eval("document.querySelector('#metrics').innerHTML.slice(0, 300)"))
        # Its log: colours drawn, no raw escape, the error line marked and reachable.
        red = b.wait_for("[...document.querySelectorAll('#log .ansi-1')].map((e) => e.textContent).join()")
        check('the log draws ANSI colours', red == 'red text', red)
        check('and shows no raw escape', b.eval("!document.querySelector('#log').textContent.includes('\\x1b')"))
        b.click('#next-error')
        cur = b.wait_for("(document.querySelector('#log .log-error.current') || {}).textContent")
        check('"Next error" goes to the error line', cur and 'something broke' in cur, cur)
        b.eval("document.querySelector('#metrics').scrollIntoView()")
        b.screenshot(os.path.join(out, 'metrics.png'))

        # Two runs compared: their params side by side, the one that differs marked, and
        # each metric's curves overlaid.
        b.navigate(url + '/#/runs')
        b.wait_for(f"!!document.querySelector('input[data-pick=\"{metrics_run2}\"]')")
        b.click(f'input[data-pick="{metrics_run}"]')
        b.click(f'input[data-pick="{metrics_run2}"]')
        b.wait_for("!document.querySelector('#compare').disabled")
        b.click('#compare')
        differs = b.wait_for("[...document.querySelectorAll('#compare-params tr.differs')]"
                             ".map((r) => r.dataset.param).join()")
        check('compare: the param that differs is marked', differs == 'scale', differs)
        same = b.eval("!!document.querySelector('#compare-params tr[data-param=\"seed\"]:not(.differs)')")
        check('compare: the one that does not is not', same)
        lines = b.wait_for("document.querySelectorAll('#compare-charts [data-metric=\"loss\"] g').length === 2 && "
                           "document.querySelectorAll('#compare-charts [data-metric=\"acc\"] g').length === 2")
        check('compare: a chart per metric with a line per run', lines,
              b.eval("document.querySelector('#compare-charts').innerText"))
        b.screenshot(os.path.join(out, 'compare.png'))

        # A pipeline as its graph: four jobs, four edges, each job right of what it needs.
        b.navigate(url + '/#/groups/' + pipe)
        nodes = b.wait_for("document.querySelectorAll('svg.dag a[data-job]').length === 4 && "
                           "[...document.querySelectorAll('svg.dag a[data-job]')].map((a) => a.dataset.job + '=' + "
                           "a.dataset.state + '@' + a.querySelector('rect').getAttribute('x')).sort().join(' ')")
        check('the pipeline page draws its jobs', nodes, b.eval("document.querySelector('#main').innerText"))
        if nodes:
            xs = {n.split('=')[0]: float(n.split('@')[1]) for n in nodes.split()}
            check('each job right of the jobs it needs',
                  set(xs) == set('abcd') and xs['a'] < xs['b'] == xs['c'] < xs['d'], nodes)
            check('all succeeded', nodes.count('=succeeded@') == 4, nodes)
        check('and its four needs', b.eval("document.querySelectorAll('svg.dag line.edge').length") == 4)
        b.screenshot(os.path.join(out, 'pipeline.png'))
        # An array as a grid.
        b.navigate(url + '/#/groups/' + arr)
        cells = b.wait_for("document.querySelectorAll('.grid .cell').length === 6 && "
                           "[...document.querySelectorAll('.grid .cell')].map((c) => c.dataset.state).join()")
        check('the array page shows its six elements, succeeded', cells == ','.join(['succeeded'] * 6), cells)

        # The log of a run that printed markup is text.
        b.navigate(url + '/#/runs/' + xss_run)
        got = b.wait_for("document.querySelector('#log') && document.querySelector('#log').textContent"
                         ".includes('<img src=x')")
        check('the run page shows the log', got, b.eval("document.querySelector('#main').innerText"))
        check('markup in the log is shown as text, not run',
              b.eval("document.querySelector('#log img, #log script') === null && document.title === 'pilot'"),
              b.eval('document.title'))

        # A running job's log, live.
        b.navigate(url + '/#/runs/' + long_run)
        b.wait_for("document.querySelector('#log') && document.querySelector('#log').textContent.includes('started')")
        marker = 'marker-%d' % os.getpid()
        with open(trigger + '.tmp', 'w') as f:
            f.write(marker)
        os.rename(trigger + '.tmp', trigger)
        t0 = time.monotonic()
        seen = b.wait_for(f"document.querySelector('#log').textContent.includes('{marker}')", timeout=10)
        lag = time.monotonic() - t0
        check(f'a line the job writes appears in the page ({lag:.2f} s after the job was asked to write it)', seen)
        b.screenshot(os.path.join(out, 'run.png'))

        # Cancel from the page.
        b.wait_for("!document.querySelector('#cancel').disabled")
        b.click('#cancel')
        state = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            j = json.loads(subprocess.run([pilot, 'show', '-o', 'json', long_run], capture_output=True, text=True,
                                          check=True).stdout)
            state = j['state']
            if state == 'canceled':
                break
            time.sleep(0.2)
        check('cancel from the page cancels the run', state == 'canceled', state)
        shown = b.wait_for("document.querySelector('#run-facts').textContent.includes('canceled')")
        check('and the page says so', shown)
        b.screenshot(os.path.join(out, 'canceled.png'))

        # The agents page.
        b.navigate(url + '/#/agents')
        row = b.wait_for("(document.querySelector('tr[data-agent=\"agent-http\"]') || {}).innerText")
        check('the agents page lists the agent, idle', row and 'idle' in row and 'runtime=host' in row, row)
        b.screenshot(os.path.join(out, 'agents.png'))

        errors = b.errors()
        check('no script error in the page', not errors, '; '.join(errors))
    except cdp.Error as e:
        check('the browser answers', False, f'{e}: {b.log_tail()}')
    finally:
        b.close()


if __name__ == '__main__':
    main()
