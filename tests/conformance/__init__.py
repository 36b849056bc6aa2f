"""The Agents SDK's own tests as convostore's conformance suite (tests/test_sdk_conformance.py)."""
