"""The seed's app as its users ran it: FastAPI under uvicorn. GET / returns the time in Moscow
and appends the visit to visits.txt; GET /visits returns the file. Only for benchmarks."""

import os
from datetime import datetime, timedelta, timezone

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

MOSCOW = timezone(timedelta(hours=3))
VISITS = os.path.join(os.environ.get("VISITS_DIR", "/media"), "visits.txt")

app = FastAPI()


@app.get("/")
def home():
    now = datetime.now(MOSCOW).isoformat(timespec="microseconds")
    with open(VISITS, "a") as f:
        f.write(now + "\n")
    return {"moscow_time": now}


@app.get("/visits", response_class=PlainTextResponse)
def visits():
    try:
        with open(VISITS) as f:
            return f.read()
    except FileNotFoundError:
        return ""
