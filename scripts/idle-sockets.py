"""Idle-socket cost from outside the server's process (docs/benchmarks.md, "Idle sockets").

Usage: idle-sockets.py <goim binary> <port> <database name> <sockets> <label>
Reports GOIM's resident memory per idle socket too (RSS with the sockets open minus RSS just before
opening them, over the number of sockets). Sockets come from 127.0.0.1–127.0.0.8 in turn, so tens of
thousands do not run out of ephemeral ports.
Needs: a PostgreSQL whose superuser `goim` accepts 127.0.0.1:55432 (PGDATA in $GOIM_IDLE_PGDATA, to sum
its processes' CPU), Python's `requests` and `websockets`. Creates the database, starts GOIM on it, registers
sockets/100 users, opens the sockets with bearer tokens, then reads /proc for GOIM's and PostgreSQL's CPU over
60 idle seconds (the client answers pings). Then every socket sends one 60 KB frame, and the memory per
socket is read again (a socket must not keep the buffer its largest frame needed); then all close, and as
many open again (is what they held reused?). Stops GOIM at the end.
"""
import asyncio, json, os, subprocess, sys, time, requests, websockets, resource
binary, port, db, n_sockets, label = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
subprocess.run(["psql","-q","-h","127.0.0.1","-p","55432","-U","goim","-d","postgres","-c",f"DROP DATABASE IF EXISTS {db}","-c",f"CREATE DATABASE {db}"],check=True,capture_output=True)
env=dict(os.environ, DATABASE_URL=f"postgres://goim@127.0.0.1:55432/{db}", GOIM_BIND=f"127.0.0.1:{port}", GOIM_JWT_SECRET="idle-secret-"*4,
         GOIM_LOG="error", GOIM_AUTH_RATE_BURST="100000", GOIM_AUTH_RATE_PER_MINUTE="100000", GOIM_WS_MAX_CONNECTIONS_PER_USER="1000", GOIM_DB_MIN_CONNECTIONS="1")
p=subprocess.Popen([binary],env=env,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL,preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,(20000,20000)))
base=f"http://127.0.0.1:{port}"
for _ in range(200):
    try:
        if requests.get(base+"/readyz",timeout=1).status_code==200: break
    except Exception: pass
    time.sleep(0.1)
users=[]
for i in range(n_sockets//100):
    r=requests.post(base+"/api/v1/auth/register",json={"username":f"idle_{i}","password":"correct horse battery"}); r.raise_for_status(); users.append(r.json()["access_token"])
def cpu_ticks(pid):
    f=open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split(); return int(f[11])+int(f[12])
def pg_pids():
    post=int(open(os.path.join(os.environ.get("GOIM_IDLE_PGDATA", "/var/lib/goim-sqlx/pg"), "postmaster.pid")).readline())
    out=subprocess.run(["ps","-o","pid=","--ppid",str(post)],capture_output=True,text=True).stdout.split()
    return [post]+[int(x) for x in out]
def pg_ticks():
    t=0
    for pid in pg_pids():
        try: t+=cpu_ticks(pid)
        except Exception: pass
    return t
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
async def main():
    async def open_sockets():
        socks=[]
        for i in range(n_sockets):
            tok=users[i%len(users)]
            socks.append(await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws",subprotocols=["goim.v1"],additional_headers={"Authorization":"Bearer "+tok},ping_interval=None,local_addr=(f"127.0.0.{1+i%8}",0)))
        return socks
    await asyncio.sleep(2)
    rss_before=rss(p.pid)
    socks=await open_sockets()
    await asyncio.sleep(5)
    rss_open=rss(p.pid)
    g0,pg0,t0=cpu_ticks(p.pid),pg_ticks(),time.time()
    # idle: the client library answers server pings by itself
    answered=[0]; all_answered=asyncio.Event()
    async def drain(s):
        try:
            async for frame in s:
                if '"id":"big"' in frame:
                    answered[0]+=1
                    if answered[0]==n_sockets: all_answered.set()
        except Exception: pass
    tasks=[asyncio.create_task(drain(s)) for s in socks]
    await asyncio.sleep(60)
    g1,pg1,t1=cpu_ticks(p.pid),pg_ticks(),time.time()
    secs=t1-t0
    rss_idle=rss(p.pid)
    # Then each socket sends one 60 KB request (refused: not a request GOIM knows) and
    # idles again: what the socket costs after it, the read buffer included.
    big=json.dumps({"id":"big","type":"no_such_request","pad":"x"*60000})
    await asyncio.gather(*[s.send(big) for s in socks])
    # Every request answered (the server has read every frame), then settled.
    await asyncio.wait_for(all_answered.wait(), 120)
    await asyncio.sleep(5)
    rss_big=rss(p.pid)
    # Then they all close, and as many open again: is what they held reused?
    await asyncio.gather(*[s.close() for s in socks])
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(5)
    rss_closed=rss(p.pid)
    socks=await open_sockets()
    await asyncio.sleep(5)
    rss_again=rss(p.pid)
    await asyncio.gather(*[s.close() for s in socks])
    print(f"{label}: {n_sockets} idle sockets, {secs:.0f} s: GOIM {10*(g1-g0)/secs:.1f} ms CPU/s, PostgreSQL {10*(pg1-pg0)/secs:.1f} ms CPU/s, GOIM RSS {rss_idle/1024:.1f} MiB ({rss_before/1024:.1f} before the sockets; {(rss_open-rss_before)/n_sockets:.2f} KiB per socket; {(rss_big-rss_before)/n_sockets:.2f} KiB per socket after one 60 KB frame each; {rss_closed/1024:.1f} MiB once all closed, {rss_again/1024:.1f} MiB with as many open again)")
try:
    asyncio.run(main())
finally:
    p.terminate(); p.wait(30)
