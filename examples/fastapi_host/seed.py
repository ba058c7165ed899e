"""Seed the demo database: jobs in every state so the overview has something to diagnose."""

from __future__ import annotations

import asyncio

from oban import Oban

from . import settings
from .workers import GenerateReport, NightlySync, SendEmail


async def main() -> None:
    pool = await Oban.create_pool(settings.DATABASE_URL, min_size=1, max_size=2)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM oban_jobs")
            row = await cur.fetchone()
            if row and row[0] > 0:
                print("demo data already seeded")
                return
        oban = Oban(pool=pool)
        jobs = [
            SendEmail.new({"to": f"user{i}@example.com", "fail": i % 4 == 0}) for i in range(12)
        ]
        jobs += [
            GenerateReport.new({"report": "monthly", "api_key": "sk-live-123"}) for _ in range(3)
        ]
        jobs += [NightlySync.new({"full": False}, scheduled_in=3600)]
        await oban.enqueue_many(jobs)
        print(f"seeded {len(jobs)} jobs")
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
