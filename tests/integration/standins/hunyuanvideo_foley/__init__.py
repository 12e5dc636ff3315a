"""Stand-in for Tencent-Hunyuan/HunyuanVideo-Foley's package (not the model): the three entry points the cascade's
``hunyuan_foley`` stage calls, with upstream's signatures and return layouts. Tests import it by putting
``tests/integration/standins`` on ``sys.path``. ``CALLS`` records what each entry point received."""
CALLS: list[tuple[str, dict]] = []
