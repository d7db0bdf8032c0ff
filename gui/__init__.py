"""THE FACE: PySide6 + pyqtgraph. Adapts the engine to widgets and owns no logic.

Reaches the app only through ``acustim`` (the engine, the pre-start plan and the names
``acustim/__init__.py`` exports; ``lint-imports`` checks it): never a transport, the guard or
the streamer directly. Nothing imports ``gui``.
"""
