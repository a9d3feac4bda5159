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

    cat = S.synthetic_rankings(100, seed=21)
    cfg = S.SimConfig(experiment_id="spark", n_users=1500, days=4, effect=0.1, pre_days=3, seed=21)
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
    for a, b in zip(duck["cumulative"], sp["cumulative"], strict=True):
        assert (a["metric"], a["day"]) == (b["metric"], b["day"])
        assert a["seq_ci_lower"] == pytest.approx(b["seq_ci_lower"], rel=1e-6, abs=1e-9)
