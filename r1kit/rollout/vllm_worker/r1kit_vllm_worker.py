"""r1kit's vLLM worker extension: loaded *inside the vLLM server's worker processes* (the server is
started with ``--worker-extension-cls r1kit_vllm_worker.WeightSync`` and this folder on
``PYTHONPATH``), so it imports nothing from r1kit: the server's environment need not have r1kit.

The trainer reaches these methods with ``POST /collective_rpc`` (``VLLM_SERVER_DEV_MODE=1``):

* ``r1kit_load_weights(path, version)``: reload every weight in place from the safetensors files
  in ``path`` and record ``version`` (the optimiser step whose weights these are);
* ``r1kit_weight_version()``: the version recorded last (0: the weights the server started with).

Tied embeddings: on the CPU build, after ``reload_weights`` a tied LM head keeps the packed copy
its linear method made at start-up, so the logits would come from the old head and the new body
(outputs match neither model). Re-running the head's ``process_weights_after_loading`` repacks it.
"""


class WeightSync:
    r1kit_version = 0

    def r1kit_load_weights(self, path: str, version: int) -> int:
        self.model_runner.reload_weights(weights_path=path)
        model = self.model_runner.get_model()
        head = getattr(model, "lm_head", None)
        method = getattr(head, "quant_method", None)
        if method is not None and hasattr(method, "process_weights_after_loading"):
            method.process_weights_after_loading(head)
        self.r1kit_version = int(version)
        return self.r1kit_version

    def r1kit_weight_version(self) -> int:
        return self.r1kit_version
