import logging
import os
import sys

from sweeps.cli import main

code = main()
if "tensorflow" in sys.modules:
    # TensorFlow's teardown at interpreter exit takes 1-2 s. By now every record is written (the
    # tracker flushes its writer when the sweep's run ends) and Ray is shut down: skip it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
