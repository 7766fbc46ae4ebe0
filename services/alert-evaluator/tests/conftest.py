import sys
from pathlib import Path

# The helper modules beside the tests (rules_helpers, evaluator_helpers) import by name.
sys.path.insert(0, str(Path(__file__).parent))
