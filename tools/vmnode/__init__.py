"""A real Kubernetes worker node in the QEMU guest of tools/vm (README.md, "node").

    python -m tools.vmnode check     # node up, the checks (exec, in-cluster config, module, chart)
    python -m tools.vmnode run       # node up until Ctrl-C (KUBECONFIG printed)
"""
