# Region swap ap-southeast-1 -> ap-southeast-2 for values copied to a disaster-recovery region.
# Swaps whole region tokens only: endpoints (rds.ap-southeast-1.amazonaws.com), ARNs
# (arn:aws:secretsmanager:ap-southeast-1:...), S3/ECR hosts. Availability-zone names such as
# ap-southeast-1a are left alone on purpose: zone letters do not correspond between regions.
s/\bap-southeast-1\b/ap-southeast-2/g
