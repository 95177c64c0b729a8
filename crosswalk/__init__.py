"""The ``crosswalk`` command: the launcher that sits above the gateway and the sandbox.

It is the one package that imports both (``crosswalk up`` runs the four sandbox systems
beside the gateway); the gateway and the sandbox never import each other.
"""
