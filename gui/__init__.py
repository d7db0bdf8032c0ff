"""THE FACE: PySide6 + pyqtgraph. Adapts the engine to widgets and owns no logic.

Never touches a transport, the guard or the streamer directly: everything goes through
``acustim.engine`` on the IO thread. Nothing imports ``gui``.
"""
