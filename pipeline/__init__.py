"""featvis_pipeline: orchestration of featvis atlases.

flows.yaml jobs are validated (`jobs`), planned into units with content keys and grouped into tiles
(`plan`), rendered by Prefect tasks on a task runner (`flows`, `tiles`) into the on-disk artifact store
(`store`, format in STORE.md), and driven from the `featvis` command line (`cli`, `commands`). Installed as
`featvis_pipeline` (the folder is `pipeline/`) so it never collides with other code named `pipeline`.
"""
