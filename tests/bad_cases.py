"""The broken scenarios of tests/bad_scenarios and the one-line error each must give.

Both halves run them (and the tensors gdtui cannot step, tests/*/test_bad_tensors.py): tests/engine/test_bad_scenarios.py headless, tests/app/test_app_bad_scenarios.py
in the step-debugger. A plain helper module: tests import it as ``tests.bad_cases``.
"""

# file, expected exit status, the line the error names (None: no line), words the message must hold
CASES = [
    ("syntax_error.py", 2, 5, "SyntaxError"),
    ("import_error.py", 2, 3, "No module named 'not_a_real_module_for_gdtui'"),
    ("nothing_defined.py", 2, None, "defines neither `model`"),
    ("missing_loss_fn.py", 2, 5, "loss_fn is not"),
    ("nonscalar_loss.py", 2, 6, "shape (4, 1); the loss must be a scalar"),
    ("loss_is_int.py", 2, 6, "returned an int, not a tensor"),
    ("loss_without_grad.py", 2, 6, "no grad"),
    ("no_requires_grad.py", 2, 4, "`w` does not require grad; create it with requires_grad=True"),
    ("unused_tensor.py", 2, 9, "holds forgotten but the loss does not use it"),
    ("params_not_tensor.py", 2, 9, "params['w'] is a float, not a tensor"),
    ("data_wrong_shape.py", 2, 7, "4 inputs but 3 targets"),
    ("calls_exit.py", 2, None, "sys.exit()"),
    ("calls_input.py", 2, 4, "input()"),
    ("raises_at_step_3.py", 2, 9, "step 3: model raised RuntimeError"),
    ("loader_raises.py", 2, 12, "step 3: fetching the next batch from data raised OSError: row 5 is unreadable"),
    ("nan_at_step_2.py", 3, None, "step 2: loss became NaN/Inf"),
    ("inf_param.py", 3, None, "step 1: w became NaN/Inf"),
    ("exit_in_step.py", 2, 10, "step 3: loss_fn called sys.exit(); remove it"),
    ("input_in_step.py", 2, 11, "step 2: model raised RuntimeError: the scenario called input()"),
]

# Tensors gdtui cannot step: file, the line the error names, words the message must hold; all refused when the file loads
BAD_TENSORS_AT_LOAD = [
    ("sparse_embedding.py", 6, "0.weight gets sparse gradients (nn.Embedding(sparse=True) makes them); "
                               "gdtui steps dense gradients only: use sparse=False"),
    ("complex_loss.py", 9, "loss() returned a complex loss (complex64); gradient descent needs a real one"),
    ("complex_params.py", 4, "trained tensor `z` is complex (complex64); gdtui trains real tensors only"),
    ("meta_model.py", 4, "the model's 2.weight is on the meta device, which holds shapes but no values"),
    ("meta_tensor.py", 4, "trained tensor `w` is on the meta device, which holds a shape but no values"),
    ("meta_data.py", 6, "data is on the meta device, which holds shapes but no values"),
]
