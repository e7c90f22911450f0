"""Training and poisoning: label-masked SFT, attacks, fine-tuning with exact resume, backdoor metrics, detection."""
