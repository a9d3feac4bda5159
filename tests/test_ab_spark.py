"""The same analysis on a real distributed engine: a local Spark session via Ibis's
PySpark backend gives the numbers DuckDB gives. Skips where Java or pyspark is missing
(.ci/run installs pyspark 4.x and Debian's openjdk-17-jre-headless)."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from harness.ab import analysis as A
from harness.ab import schema
from harness.ab import simulate as S

PROPS = [1.0 / k for k in range(1, 11)]


def _java() -> bool:
    home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or (home is not None and os.path.exists(os.path.join(home, "bin", "java")))


pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed (pip install 'pyspark>=4,<5')"),
    pytest.mark.skipif(not _java(), reason="no Java runtime (apt-get install openjdk-17-jre-headless)"),
]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("harness-ab-parity")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_and_duckdb_give_the_same_analysis(tmp_path, spark):
    import ibis

    # small on purpose (1,179 exposures): Spark's cost here is per query, not per row,
    # and every number (CUPED with the pre-period, per-day and cumulative figures) is
    # still compared
    cat = S.synthetic_rankings(60, seed=21)
    cfg = S.SimConfig(experiment_id="spark", n_users=400, days=3, effect=0.1, pre_days=2, seed=21)
    S.write(cat, cfg, tmp_path, "parquet", progress=False)

    con = schema.connect_parquet(tmp_path)
    exp = schema.get_experiment(con, "spark")
    duck = A.analyze(ibis.duckdb.from_connection(con), exp, A.Options(propensities=PROPS))
    con.close()

    spark.read.parquet(str(tmp_path / "exposures.parquet")).drop("type").createOrReplaceTempView("exposures")
    spark.read.parquet(str(tmp_path / "interactions.parquet")).drop("type").createOrReplaceTempView("interactions")
    sp = A.analyze(ibis.pyspark.connect(spark), exp, A.Options(propensities=PROPS))

    assert duck["srm"]["users"] == sp["srm"]["users"]
    for a, b in zip(duck["effects"], sp["effects"], strict=True):
        assert a["metric"] == b["metric"]
        for key in ("control_value", "treatment_value", "effect_size", "effect_size_ci_lower", "effect_size_ci_upper", "pvalue"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["metric"], key)
    assert duck["data_quality"] == sp["data_quality"] and duck["options"]["cuped"] and sp["options"]["cuped"]
    for v in duck["variants"]:
        assert duck["variants"][v]["metrics"] == pytest.approx(sp["variants"][v]["metrics"], rel=1e-9)
    for e in duck["effects"]:
        assert e["power"].get("users_needed") is not None
    assert [e["power"].get("users_needed") for e in duck["effects"]] == [e["power"].get("users_needed") for e in sp["effects"]]
    for key in ("daily", "cumulative"):
        assert len(duck[key]) == len(sp[key]) > 0
        for a, b in zip(duck[key], sp[key], strict=True):
            assert (a["metric"], a["day"]) == (b["metric"], b["day"])
            for k in ("effect_size", "ci_lower", "ci_upper", "seq_ci_lower", "seq_ci_upper", "effect_size_ci_lower", "effect_size_ci_upper"):
                if k in a:
                    assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), (key, a["metric"], a["day"], k)
