# Account swap for cross-account copies: account ids inside ARNs
# (arn:aws:iam::111111111111:role/app -> arn:aws:iam::222222222222:role/app)
s/:${SOURCE_ACCOUNT}:/:${DEST_ACCOUNT}:/g
# ... and in ECR registry host names (111111111111.dkr.ecr.us-east-1.amazonaws.com)
s/\b${SOURCE_ACCOUNT}\.dkr\.ecr\./${DEST_ACCOUNT}.dkr.ecr./g
