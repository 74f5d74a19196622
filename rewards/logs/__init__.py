"""Log formats: the decision log as VW DSJSON (`dsjson_export`, read back by `dsjson_import`) and
as Parquet for notebooks (`parquet`)."""
