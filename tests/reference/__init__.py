"""Plain-torch (and plain-Python) references for computations other projects do inline.

fastalign is compared with TRL's own code wherever TRL has it as a function or a trainer method
(``trl.rewards``, ``trl.pack_dataset``, ``GRPOTrainer._generate_and_score_completions``,
``GRPOTrainer._compute_loss``, ``DPOTrainer._compute_loss``, ...). A few computations live
inside a trainer method with nothing to call on their own: the advantage step, the completion
mask, GSPO's sequence ratio and the clipped policy loss. To test those on thousands of cases and
to time them alone, this package computes them in the project's own code, from what they are
(the formulas below), not from TRL's lines. Each is proven equal to the real trainer method on a
tiny model:

=====================  ==========================================================================
module                 proven equal to (test)
=====================  ==========================================================================
``advantages``         ``GRPOTrainer`` / ``RLOOTrainer._generate_and_score_completions``, bit for
                       bit, advantages and reward metrics (``test_trl_trainer_parity.py``)
``masks``              ``GRPOTrainer._generate_single_turn`` + ``_generate`` (``test_overlong.py``
                       ``test_matches_grpo_trainer``)
``policy_loss``        ``GRPOTrainer._compute_loss``, loss and gradient (``test_trl_trainer_parity.py``
                       ``test_policy_loss_reference_is_grpo_trainer``)
``partition``          Karmarkar-Karp's largest differencing method from its published description
                       (no other project's code; ``test_packing.py``)
=====================  ==========================================================================

The package lives under ``tests/`` and is not part of the wheel; ``benches/`` imports it too.
"""
