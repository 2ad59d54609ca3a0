# Region swap us-east-2 -> us-east-1 for values copied to a disaster-recovery region.
# Swaps whole region tokens only: endpoints (rds.us-east-2.amazonaws.com), ARNs
# (arn:aws:secretsmanager:us-east-2:...), S3/ECR hosts. Availability-zone names such as
# us-east-2a are left alone on purpose: zone letters do not correspond between regions.
s/\bus-east-2\b/us-east-1/g
